package gcp

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/oauth2"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Keychain authenticates pulls from Artifact Registry with Application
// Default Credentials, found on first use: from the hosts of the gcp source
// registries, and, as the original did with its Artifact Registry target,
// from every *-docker.pkg.dev host whenever Google credentials are in use
// (a gcp target or a gcp source).
type Keychain struct {
	ctx    context.Context
	opts   Options
	hosts  map[string]bool
	pkgDev bool // every *-docker.pkg.dev host
	once   sync.Once
	ts     oauth2.TokenSource
	err    error
}

// NewKeychain serves the Artifact Registry locations of the gcp source
// registries. gcpTarget says the target is Artifact Registry. o.RegistryHost,
// when set, stands for every location's host (tests).
func NewKeychain(ctx context.Context, locations []string, gcpTarget bool, o Options) *Keychain {
	k := &Keychain{ctx: context.WithoutCancel(ctx), opts: o, hosts: map[string]bool{}, pkgDev: gcpTarget}
	for _, l := range locations {
		host := registry.ArtifactRegistryHost(l)
		if o.RegistryHost != "" {
			host = o.RegistryHost
		}
		k.hosts[registry.Canonical(host)] = true
		k.pkgDev = true
	}
	return k
}

// Resolve implements authn.Keychain: an access token for a configured
// host, anonymous for any other.
func (k *Keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := registry.Canonical(r.RegistryStr())
	if !k.hosts[host] && !(k.pkgDev && registry.IsArtifactRegistry(host)) {
		return authn.Anonymous, nil
	}
	k.once.Do(func() { k.ts, k.err = tokenSource(k.ctx, k.opts) })
	if k.err != nil {
		return nil, fmt.Errorf("gcp source %s: %w", r.RegistryStr(), k.err)
	}
	if _, err := k.ts.Token(); err != nil {
		return nil, fmt.Errorf("gcp source %s: access token: %w", r.RegistryStr(), err)
	}
	return tokenAuth{k.ts}, nil
}
