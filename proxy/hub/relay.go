// Package hub is the proxy's read API in the cluster role: one mirror
// service that node proxies ask before the sources, so a miss on many nodes
// is one fetch from the source and one copy for the whole cluster. Its
// replicas split repositories by rendezvous hashing and pass a miss to the
// repository's owner; the webhook asks it whether the target has an image
// and to copy one (api.go). Everything here makes fetching cheaper, never
// less available: whoever cannot reach the hub or the owner goes to the
// source itself.
package hub

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/peers"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// DefaultTimeout bounds how long a node proxy waits for the hub's answer,
// and for each next byte of it, before it goes to the source itself: a hub
// that stalls must cost a pull little.
const DefaultTimeout = 5 * time.Second

// DefaultAddress is where the hub listens.
const DefaultAddress = ":7440"

// ParseURL checks a hub URL: http or https, a host, nothing else.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, fmt.Errorf("hub url %q: want http(s)://HOST[:PORT]", s)
	}
	return u, nil
}

// client is an anonymous client of a hub (or hub replica) at u.
func client(u *url.URL, role string, rt http.RoundTripper, timeout time.Duration) (*upstream.Client, error) {
	opts := []name.Option{}
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("hub %s: %w", u, err)
	}
	return upstream.New(upstream.Options{
		Role: role, Registry: reg, Name: u.Host,
		Auth:            func(context.Context) (authn.Authenticator, error) { return authn.Anonymous, nil },
		Transport:       rt,
		FollowRedirects: true,
		Timeout:         timeout,
	}), nil
}

// nodeRelay is the hub, for a node proxy: asked for every source's content.
type nodeRelay struct{ c *upstream.Client }

// NewRelay is the hub at u as a node proxy's relay (fetch.Options.Relay).
func NewRelay(u *url.URL, rt http.RoundTripper, timeout time.Duration) (fetch.Relay, error) {
	c, err := client(u, upstream.Hub, rt, timeout)
	if err != nil {
		return nil, err
	}
	return nodeRelay{c}, nil
}

func (r nodeRelay) For(context.Context, fetch.Source) *upstream.Client { return r.c }
func (r nodeRelay) Role() string                                       { return upstream.Hub }

// peerRelay is, for a hub replica, the replica that owns a repository.
type peerRelay struct {
	set     *peers.Set
	rt      http.RoundTripper
	timeout time.Duration

	mu      sync.Mutex
	clients map[string]*upstream.Client // by replica address
}

// NewPeerRelay asks the owner of each source repository among set's
// replicas, unless that is this replica (fetch.Options.Relay of a hub).
func NewPeerRelay(set *peers.Set, rt http.RoundTripper, timeout time.Duration) fetch.Relay {
	return &peerRelay{set: set, rt: noRelay{rt}, timeout: timeout, clients: map[string]*upstream.Client{}}
}

// Owner is the key replicas agree on for a source repository.
func Owner(set *peers.Set, src fetch.Source) (string, bool) { return set.Owner(src.String()) }

func (r *peerRelay) For(_ context.Context, src fetch.Source) *upstream.Client {
	addr, self := Owner(r.set, src)
	if self {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[addr]; ok {
		return c
	}
	c, err := client(&url.URL{Scheme: "http", Host: addr}, upstream.Peer, r.rt, r.timeout)
	if err != nil {
		return nil
	}
	r.clients[addr] = c
	return c
}

func (r *peerRelay) Role() string { return upstream.Peer }

// noRelay marks requests to the owner: it fetches from the source itself.
type noRelay struct{ next http.RoundTripper }

func (t noRelay) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(fetch.NoRelayHeader, "1")
	return t.next.RoundTrip(r)
}
