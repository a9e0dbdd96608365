// Package auth gives credentials for source and target registries: the
// config's registries, pods' pull secrets, and cloud tokens.
package auth

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
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
		host, _, err := config.SplitRegistry(r.Generic.Registry)
		if err != nil {
			return nil, fmt.Errorf("source.registries[%d]: %w", i, err)
		}
		host = CanonicalHost(host)
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
	if a, ok := s.creds[CanonicalHost(r.RegistryStr())]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

// Insecure tells whether host is reached over plain HTTP.
func (s *Sources) Insecure(host string) bool {
	return s != nil && s.insecure[CanonicalHost(host)]
}

// NameOptions parse references on host.
func (s *Sources) NameOptions(host string) []name.Option {
	if s.Insecure(host) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// CanonicalHost folds Docker Hub's names into one, lower case.
func CanonicalHost(h string) string {
	h = strings.ToLower(h)
	switch h {
	case "index.docker.io", "registry-1.docker.io", "docker.io":
		return "docker.io"
	}
	return h
}
