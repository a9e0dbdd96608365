// Package target holds the registries images are mirrored to. Every kind
// (aws, gcp, generic, local) implements Target and passes the shared suite
// in targettest.
package target

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
)

// Target is a registry that holds the mirrors.
type Target interface {
	// Kind is aws, gcp, generic or local.
	Kind() string
	// Mapper names target references and maps them back to their sources.
	Mapper() imageref.Mapper
	// EnsureRepository makes sure repo (a path inside the target host, as
	// Mapper().Repository returns) can be pushed to; registries that create
	// repositories on push need nothing.
	EnsureRepository(ctx context.Context, repo string) error
	// Authenticator gives push and pull rights to the target.
	Authenticator(ctx context.Context) (authn.Authenticator, error)
	// Transport carries requests to the target (TLS settings, in-process store).
	Transport() http.RoundTripper
	// NameOptions parse target references (name.Insecure for plain HTTP).
	NameOptions() []name.Option
}

// Reference turns a target reference into go-containerregistry's form.
func Reference(t Target, r reference.Named) (name.Reference, error) {
	ref, err := name.ParseReference(r.String(), t.NameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("target reference %s: %w", r, err)
	}
	return ref, nil
}

// RemoteOptions are the options every call to the target uses.
func RemoteOptions(ctx context.Context, t Target) ([]remote.Option, error) {
	a, err := t.Authenticator(ctx)
	if err != nil {
		return nil, fmt.Errorf("authenticate to target %s: %w", t.Mapper().Base(), err)
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(a), remote.WithTransport(t.Transport())}, nil
}

// Head returns the descriptor of ref in the target, or ErrNotFound.
func Head(ctx context.Context, t Target, ref name.Reference) (*v1.Descriptor, error) {
	opts, err := RemoteOptions(ctx, t)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		if IsNotFound(err) {
			return nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
		}
		return nil, fmt.Errorf("check %s in target: %w", ref, err)
	}
	return desc, nil
}

// ErrNotFound says the target lacks an image.
var ErrNotFound = errors.New("not found in target")

// IsNotFound tells whether err is a registry's "no such manifest or repository".
func IsNotFound(err error) bool {
	if errors.Is(err, ErrNotFound) {
		return true
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		if terr.StatusCode == http.StatusNotFound {
			return true
		}
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return true
			}
		}
	}
	return false
}
