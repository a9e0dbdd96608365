package fetch

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// Relay is a cache in front of the sources that serves the same read API
// (the hub for a node proxy; for a hub replica, the replica that owns a
// repository): asked first for what a source serves, with ?ns=<registry>,
// and passed over for the source whenever it fails, stalls or answers
// anything but success. It makes fetching cheaper, never less available.
type Relay interface {
	// For is the client to ask for src's content first, nil for none.
	For(ctx context.Context, src Source) *upstream.Client
	// Role is the role of its clients (upstream.Hub, upstream.Peer).
	Role() string
}

// RelayRole is the role of the relay asked first, "" without one.
func (s *Sources) RelayRole() string {
	if s.opts.Relay == nil {
		return ""
	}
	return s.opts.Relay.Role()
}

// NoRelayHeader on a request asks a proxy to fetch what it lacks from the
// sources itself: a hub replica sends it to the replica that owns the
// repository, which must not pass the request on again.
const NoRelayHeader = "K8s-Image-Swapper-No-Relay"

type noRelayKey struct{}

// WithoutRelay marks ctx's fetches as going to the sources themselves: a
// request a relay sent on must not be relayed again.
func WithoutRelay(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRelayKey{}, true)
}

// relayFor is the relay to try for src, nil for none.
func (s *Sources) relayFor(ctx context.Context, src Source) *upstream.Client {
	if s.opts.Relay == nil || ctx.Value(noRelayKey{}) != nil {
		return nil
	}
	return s.opts.Relay.For(ctx, src)
}

// do sends one request for src's content: to rc first (when not nil), then
// to the source. relay is the role of the relay that answered, "" for the
// source.
func (s *Sources) do(ctx context.Context, rc *upstream.Client, src Source, method string, p registry.Path, h http.Header) (resp *http.Response, relay string, err error) {
	if rc != nil {
		rp := p
		rp.Query = "ns=" + url.QueryEscape(src.Registry)
		resp, err := rc.Do(ctx, method, rp, h)
		if err == nil {
			metrics.RelayRequests.WithLabelValues(rc.Role(), "served").Inc()
			return resp, rc.Role(), nil
		}
		if ctx.Err() != nil {
			return nil, "", err
		}
		metrics.RelayRequests.WithLabelValues(rc.Role(), "fallback").Inc()
		if !upstream.IsNotFound(err) {
			s.log.Info("relay failed; asking the source", "relay", rc.Registry(), "image", src.String(), "error", err)
		}
	}
	c, err := s.client(src.Registry)
	if err != nil {
		return nil, "", err
	}
	if method == http.MethodGet {
		metrics.ProxySourceFetches.WithLabelValues(src.Registry, strings.TrimSuffix(p.Kind, "s")).Inc()
	}
	resp, err = c.Do(ctx, method, p, h)
	return resp, "", err
}
