package aws

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// resolveTimeout bounds a token fetch for a source pull: authn.Keychain
// gives no context.
const resolveTimeout = 30 * time.Second

// Keychain authenticates pulls from ECR source registries, with the same
// credentials as the target (default chain, then the registry's role).
type Keychain struct {
	tokens map[string]*tokenCache // by registry host
}

// NewKeychain holds a token for each of regs. o.RegistryHost, when set,
// stands for every registry's host (tests).
func NewKeychain(ctx context.Context, regs []Registry, o Options) (*Keychain, error) {
	k := &Keychain{tokens: map[string]*tokenCache{}}
	log := cmp.Or(o.Logger, slog.Default())
	for _, r := range regs {
		host := registry.ECRHost(r.AccountID, r.Region)
		if o.RegistryHost != "" {
			host = o.RegistryHost
		}
		if _, dup := k.tokens[registry.Canonical(host)]; dup {
			continue
		}
		client, err := newClient(ctx, r, o)
		if err != nil {
			return nil, fmt.Errorf("ECR source %s: %w", host, err)
		}
		k.tokens[registry.Canonical(host)] = newTokenCache(client, log)
	}
	return k, nil
}

// Resolve implements authn.Keychain: a registry token for a configured ECR
// host, anonymous for any other.
func (k *Keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	c, ok := k.tokens[registry.Canonical(r.RegistryStr())]
	if !ok {
		return authn.Anonymous, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	a, err := c.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws source %s: %w", r.RegistryStr(), err)
	}
	return a, nil
}
