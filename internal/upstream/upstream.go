// Package upstream is the client of one registry the proxy reads from, the
// target or a source: requests authenticated per repository by
// go-containerregistry's transport (which does the token dance and renews
// tokens), a bound on requests at once, response headers within a timeout
// and no body read stalled longer, and a breaker that skips a registry that
// just hung or refused. A registry's non-success answer is an *Error.
package upstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/singleflight"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// Roles, as errors, logs and metrics name them.
const (
	Target = "target"
	Source = "source"
	// Relays in front of the sources (internal/fetch): the hub a node proxy
	// asks, the hub replica that owns a repository.
	Hub  = "hub"
	Peer = "peer"
)

// Defaults of Options.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultMaxConcurrent = 32
)

const (
	// transportTTL bounds how long one repository's authenticated transport
	// is reused: cloud targets hand out tokens that expire.
	transportTTL  = 10 * time.Minute
	maxTransports = 512
)

// manifestAccept is every manifest type the proxy passes on.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"application/vnd.docker.distribution.manifest.v1+json",
}, ", ")

// AcceptManifests is the header that asks for any of them.
func AcceptManifests() http.Header { return http.Header{"Accept": {manifestAccept}} }

// Options say which registry a Client reads and how.
type Options struct {
	Role     string // Target, Source, Hub or Peer
	Registry name.Registry
	// Name is the registry in errors and logs (default its host).
	Name string
	// Auth gives the credentials, asked once per repository and transportTTL.
	Auth      func(ctx context.Context) (authn.Authenticator, error)
	Transport http.RoundTripper
	// FollowRedirects follows them; the target's are passed on to clients.
	FollowRedirects bool
	// Timeout bounds the wait for response headers, and each stalled body
	// read (default DefaultTimeout).
	Timeout time.Duration
	// MaxConcurrent bounds requests at once (default DefaultMaxConcurrent).
	MaxConcurrent int
}

// Client reads one registry.
type Client struct {
	role    string
	label   string // registry name for logs and errors
	reg     name.Registry
	auth    func(ctx context.Context) (authn.Authenticator, error)
	base    http.RoundTripper
	follow  bool
	timeout time.Duration
	sem     chan struct{}

	repos *ttlcache.Cache[string, http.RoundTripper] // authenticated per repository
	group singleflight.Group
	brk   breaker
}

// New returns the client o describes.
func New(o Options) *Client {
	return &Client{
		role:    o.Role,
		label:   cmp.Or(o.Name, o.Registry.RegistryStr()),
		reg:     o.Registry,
		auth:    o.Auth,
		base:    o.Transport,
		follow:  o.FollowRedirects,
		timeout: cmp.Or(o.Timeout, DefaultTimeout),
		sem:     make(chan struct{}, cmp.Or(o.MaxConcurrent, DefaultMaxConcurrent)),
		repos:   ttlcache.New[string, http.RoundTripper](maxTransports),
	}
}

// Role is the client's role: Target, Source, or a relay's (Hub, Peer).
func (c *Client) Role() string { return c.role }

// Registry is the registry the client reads.
func (c *Client) Registry() string { return c.label }

// Timeout is the client's timeout.
func (c *Client) Timeout() time.Duration { return c.timeout }

// Do sends one request for p. A response with a status other than 2xx,
// 3xx or 416 is returned as an *Error. The caller closes the body, which
// frees the request's slot. While the registry's breaker is open (it just
// hung or refused) the request fails at once with ErrUnavailable.
func (c *Client) Do(ctx context.Context, method string, p registry.Path, h http.Header) (*http.Response, error) {
	if !c.brk.allow() {
		return nil, fmt.Errorf("%s %s: %w", c.role, c.label, ErrUnavailable)
	}
	resp, err := c.send(ctx, method, p, h)
	var ue *Error
	// An HTTP answer, even an error, shows the registry is there; a caller
	// that went away says nothing about it.
	c.brk.result(err != nil && ctx.Err() == nil && !errors.As(err, &ue))
	return resp, err
}

func (c *Client) send(ctx context.Context, method string, p registry.Path, h http.Header) (*http.Response, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release := sync.OnceFunc(func() { <-c.sem })
	rt, err := c.transport(ctx, p.Repo)
	if err != nil {
		release()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(c.timeout, cancel)
	done := func() { timer.Stop(); cancel(); release() }

	req, err := http.NewRequestWithContext(ctx, method, c.reg.Scheme()+"://"+c.reg.RegistryStr()+p.String(), nil)
	if err != nil {
		done()
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	client := &http.Client{Transport: rt}
	if !c.follow {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	start := time.Now()
	resp, err := client.Do(req)
	if !timer.Stop() {
		if resp != nil {
			resp.Body.Close()
		}
		done()
		return nil, fmt.Errorf("%s %s %s/%s: %w after %s", c.role, c.label, p.Repo, p.Kind, ErrTimeout, c.timeout)
	}
	if err != nil {
		done()
		return nil, fmt.Errorf("%s %s: %w", c.role, c.label, err)
	}
	metrics.ProxyUpstreamDuration.WithLabelValues(c.role, strings.TrimSuffix(p.Kind, "s")).Observe(time.Since(start).Seconds())
	// 416 is an answer to pass on (to a Range), not a failure.
	if resp.StatusCode >= 400 && resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		defer done()
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, &Error{Role: c.role, Registry: c.label, Status: resp.StatusCode,
			RetryAfter: resp.Header.Get("Retry-After"), Body: strings.TrimSpace(string(b))}
	}
	// From here on only a stalled body read ends the request early.
	idle := time.AfterFunc(c.timeout, cancel)
	idle.Stop()
	resp.Body = &idleBody{ReadCloser: resp.Body, timer: idle, idle: c.timeout, done: done}
	return resp, nil
}

// transport returns repo's authenticated transport, made once however many
// ask at the same time.
func (c *Client) transport(ctx context.Context, repo string) (http.RoundTripper, error) {
	if rt, ok := c.repos.Get(repo); ok {
		return rt, nil
	}
	v, err, _ := c.group.Do(repo, func() (any, error) {
		// Shared by every caller: not bound to the first one's context.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		a, err := c.auth(ctx)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s %s: %w", c.role, c.label, err)
		}
		scope := c.reg.Repo(repo).Scope(transport.PullScope)
		rt, err := transport.NewWithContext(ctx, c.reg, a, c.base, []string{scope})
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w: %v", ErrTimeout, err)
			}
			var te *transport.Error
			if errors.As(err, &te) {
				return nil, &Error{Role: c.role, Registry: c.label, Status: te.StatusCode, Body: te.Error()}
			}
			return nil, fmt.Errorf("%s %s: %w", c.role, c.label, err)
		}
		c.repos.Set(repo, rt, transportTTL)
		return rt, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(http.RoundTripper), nil
}

// idleBody cancels its request when one Read waits longer than idle (a
// stalled registry; a slow client does not count), and frees the request's
// slot on Close.
type idleBody struct {
	io.ReadCloser
	timer *time.Timer
	idle  time.Duration
	done  func()
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.ReadCloser.Read(p)
	b.timer.Stop()
	return n, err
}

func (b *idleBody) Close() error {
	err := b.ReadCloser.Close()
	b.done()
	return err
}
