// Package auth gives credentials for source and target registries: the
// config's registries, pods' pull secrets, and cloud tokens.
package auth

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Sources holds what the config says about source registries: credentials
// and which hosts speak plain HTTP.
type Sources struct {
	creds    map[string]authn.Authenticator
	insecure map[string]bool
}

// NewSources reads the generic source registries of the config. Cloud
// (aws, gcp) sources get their tokens from their own keychains.
func NewSources(regs []config.Registry) (*Sources, error) {
	s := &Sources{creds: map[string]authn.Authenticator{}, insecure: map[string]bool{}}
	for i, r := range regs {
		if r.Type != "generic" {
			continue
		}
		b, err := registry.ParseBase(r.Generic.Registry)
		if err != nil {
			return nil, fmt.Errorf("source.registries[%d]: %w", i, err)
		}
		host := registry.Canonical(b.Host)
		if r.Generic.Username != "" {
			s.creds[host] = &authn.Basic{Username: r.Generic.Username, Password: r.Generic.Password}
		}
		s.insecure[host] = r.Generic.Insecure
	}
	return s, nil
}

// Resolve implements authn.Keychain: configured credentials, else anonymous.
func (s *Sources) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if s == nil {
		return authn.Anonymous, nil
	}
	if a, ok := s.creds[registry.Canonical(r.RegistryStr())]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

// Insecure tells whether host is reached over plain HTTP.
func (s *Sources) Insecure(host string) bool {
	return s != nil && s.insecure[registry.Canonical(host)]
}

// NameOptions parse references on host.
func (s *Sources) NameOptions(host string) []name.Option {
	if s.Insecure(host) {
		return []name.Option{name.Insecure}
	}
	return nil
}
