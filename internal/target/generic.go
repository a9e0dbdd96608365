package target

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
)

// Generic is any OCI registry (distribution, Harbor, zot, GHCR, Artifactory)
// that creates repositories on push.
type Generic struct {
	mapper    imageref.Mapper
	auth      authn.Authenticator
	insecure  bool
	transport http.RoundTripper
}

// GenericSpec is a generic target.
type GenericSpec struct {
	Registry string // HOST[:PORT][/PREFIX]
	// Insecure reaches it over plain HTTP, or tolerates an untrusted certificate.
	Insecure           bool
	Username, Password string // "" for anonymous
	// Endpoint, when set, is the HOST:PORT connections go to instead of the
	// registry's own host, which references keep naming (a node reaching the
	// hub's store by its Service's address rather than its DNS name).
	Endpoint string
}

// NewGeneric checks g and returns its target.
func NewGeneric(g GenericSpec) (*Generic, error) {
	m, err := imageref.NewMapper(g.Registry)
	if err != nil {
		return nil, fmt.Errorf("generic target: %w", err)
	}
	var a authn.Authenticator = authn.Anonymous
	if g.Username != "" {
		a = &authn.Basic{Username: g.Username, Password: g.Password}
	}
	rt := NewTransport(g.Insecure)
	if g.Endpoint != "" {
		rt = connectTo(rt.(*http.Transport), m.Host, g.Endpoint)
	}
	return &Generic{mapper: m, auth: a, insecure: g.Insecure, transport: rt}, nil
}

// connectTo dials endpoint for host's connections, as curl's --connect-to.
func connectTo(t *http.Transport, host, endpoint string) *http.Transport {
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.EqualFold(addr, host) || strings.EqualFold(addr, host+":443") || strings.EqualFold(addr, host+":80") {
			addr = endpoint
		}
		return dial(ctx, network, addr)
	}
	return t
}

// NewTransport is the default transport, tolerating self-signed
// certificates when insecure (plain HTTP comes from name.Insecure).
func NewTransport(insecure bool) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	if insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by insecure: true
	}
	return t
}

func (g *Generic) Kind() string                                               { return "generic" }
func (g *Generic) Mapper() imageref.Mapper                                    { return g.mapper }
func (g *Generic) EnsureRepository(context.Context, string) error             { return nil }
func (g *Generic) Authenticator(context.Context) (authn.Authenticator, error) { return g.auth, nil }
func (g *Generic) Transport() http.RoundTripper                               { return g.transport }

func (g *Generic) NameOptions() []name.Option {
	if g.insecure {
		return []name.Option{name.Insecure, name.StrictValidation}
	}
	return []name.Option{name.StrictValidation}
}
