// Package gcp is the GCP Artifact Registry target (target.type: gcp) and the
// keychain for Artifact Registry source registries.
//
// It implements target.Target without importing internal/target, which
// imports this package to build targets (Go interfaces are structural).
package gcp

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/oauth2"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Repository is an Artifact Registry docker repository, the target.
type Repository struct {
	Location     string // e.g. europe-west1
	ProjectID    string
	RepositoryID string
}

// Options override where the target's requests go. Production leaves them
// zero; tests point them at the stand-ins of internal/target/cloudtest.
type Options struct {
	// Endpoint is the Artifact Registry API address (HOST:PORT).
	Endpoint string
	// PlaintextAPI reaches Endpoint over gRPC without TLS, still sending
	// the token (stand-ins only).
	PlaintextAPI bool
	// RegistryHost (HOST:PORT) replaces LOCATION-docker.pkg.dev in references.
	RegistryHost string
	// Insecure reaches the registry over plain HTTP.
	Insecure bool
	// Transport carries registry requests; default a clone of http.DefaultTransport.
	Transport http.RoundTripper
	// RefreshBefore renews an access token this long before it expires
	// (default 5 minutes).
	RefreshBefore time.Duration
	Logger        *slog.Logger // default slog.Default()
}

// Target is one Artifact Registry docker repository; every image goes in it
// as LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/docker.io/library/nginx.
type Target struct {
	cfg       Repository
	mapper    imageref.Mapper
	tokens    oauth2.TokenSource
	opts      Options
	transport http.RoundTripper
}

// New finds the Application Default Credentials and checks that the
// repository exists and holds docker images.
func New(ctx context.Context, g Repository, o Options) (*Target, error) {
	host := registry.ArtifactRegistryHost(g.Location)
	if o.RegistryHost != "" {
		host = o.RegistryHost
	}
	m, err := imageref.NewMapper(host + "/" + g.ProjectID + "/" + g.RepositoryID)
	if err != nil {
		return nil, fmt.Errorf("gcp target: %w", err)
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	ts, err := tokenSource(ctx, o)
	if err != nil {
		return nil, err
	}
	rt := o.Transport
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	t := &Target{cfg: g, mapper: m, tokens: ts, opts: o, transport: rt}
	if err := t.Check(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Target) Kind() string                                   { return "gcp" }
func (t *Target) Mapper() imageref.Mapper                        { return t.mapper }
func (t *Target) EnsureRepository(context.Context, string) error { return nil } // images are created on push
func (t *Target) Transport() http.RoundTripper                   { return t.transport }

func (t *Target) NameOptions() []name.Option {
	if t.opts.Insecure {
		return []name.Option{name.Insecure, name.StrictValidation}
	}
	return []name.Option{name.StrictValidation}
}

// Authenticator gives push and pull rights: user oauth2accesstoken and a
// fresh access token each time the registry asks.
func (t *Target) Authenticator(context.Context) (authn.Authenticator, error) {
	if _, err := t.tokens.Token(); err != nil {
		return nil, fmt.Errorf("gcp target %s: %w", t.mapper.Base(), err)
	}
	return tokenAuth{t.tokens}, nil
}
