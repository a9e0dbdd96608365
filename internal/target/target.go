// Package target holds the registries images are mirrored to. Every kind
// (aws, gcp, generic, local) implements Target and passes the shared suite
// in targettest.
package target

import (
	"context"
	"errors"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
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

// IsNotFound tells whether err is a registry's "no such manifest or repository".
func IsNotFound(err error) bool {
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
