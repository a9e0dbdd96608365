package aws

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// resolveTimeout bounds a token fetch for a source pull: authn.Keychain
// gives no context.
const resolveTimeout = 30 * time.Second

// Keychain authenticates pulls from the ECR registries of source.registries
// entries of type aws, with the same credentials as the target (default
// chain, then the entry's role).
type Keychain struct {
	tokens map[string]*tokenCache // by registry host
}

// NewKeychain reads the aws entries of regs; other types are ignored.
// o.RegistryHost, when set, stands for every entry's host (tests).
func NewKeychain(ctx context.Context, regs []config.Registry, o Options) (*Keychain, error) {
	k := &Keychain{tokens: map[string]*tokenCache{}}
	for i, r := range regs {
		if r.Type != "aws" {
			continue
		}
		host := registry.ECRHost(r.AWS.AccountID, r.AWS.Region)
		if o.RegistryHost != "" {
			host = o.RegistryHost
		}
		if _, dup := k.tokens[registry.Canonical(host)]; dup {
			continue
		}
		client, err := newClient(ctx, r.AWS, o)
		if err != nil {
			return nil, fmt.Errorf("source.registries[%d]: %w", i, err)
		}
		k.tokens[registry.Canonical(host)] = newTokenCache(client, o.logger())
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
