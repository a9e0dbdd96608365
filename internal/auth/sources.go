// Package auth gives credentials for source registries: the config's
// generic registries (pods' pull secrets are in package pullsecrets).
package auth

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Source is a source registry with credentials of its own (a generic one:
// cloud sources get their tokens from their own keychains).
type Source struct {
	Registry           string // HOST[:PORT][/PREFIX]; the prefix is ignored
	Username, Password string // "" for anonymous
	Insecure           bool   // plain HTTP
}

// Sources holds what is known of source registries: credentials and which
// hosts speak plain HTTP.
type Sources struct {
	creds    map[string]authn.Authenticator
	insecure map[string]bool
}

// NewSources reads the source registries with credentials of their own.
func NewSources(srcs []Source) (*Sources, error) {
	s := &Sources{creds: map[string]authn.Authenticator{}, insecure: map[string]bool{}}
	for _, r := range srcs {
		b, err := registry.ParseBase(r.Registry)
		if err != nil {
			return nil, fmt.Errorf("source registry: %w", err)
		}
		host := registry.Canonical(b.Host)
		if r.Username != "" {
			s.creds[host] = &authn.Basic{Username: r.Username, Password: r.Password}
		}
		s.insecure[host] = r.Insecure
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
