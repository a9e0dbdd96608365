package proxy

import (
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
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

const (
	roleTarget = "target"
	roleSource = "source"

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

// upstream is one registry the proxy reads from, the target or a source:
// authenticated per repository by go-containerregistry's transport (which
// does the token dance and refreshes tokens), at most cap(sem) requests at
// once, response headers within timeout and no body read stalled longer.
type upstream struct {
	role    string
	label   string // registry name for logs and errors
	reg     name.Registry
	auth    func(ctx context.Context) (authn.Authenticator, error)
	base    http.RoundTripper
	follow  bool // follow redirects; the target's are passed on to clients
	timeout time.Duration
	sem     chan struct{}

	repos *ttlcache.Cache[string, http.RoundTripper] // authenticated per repository
	group singleflight.Group
	brk   breaker
}

func newRepoTransports() *ttlcache.Cache[string, http.RoundTripper] {
	return ttlcache.New[string, http.RoundTripper](maxTransports)
}

// do sends one request for repo's kind/ref. A response with a status other
// than 2xx, 3xx or 416 is returned as an *upstreamError. The caller closes the
// body, which frees the request's slot. While the upstream's breaker is open
// (it just hung or refused) the request fails at once with errUnavailable.
func (u *upstream) do(ctx context.Context, method, repo, kind, ref string, h http.Header) (*http.Response, error) {
	if !u.brk.allow() {
		return nil, fmt.Errorf("%s %s: %w", u.role, u.label, errUnavailable)
	}
	resp, err := u.send(ctx, method, repo, kind, ref, h)
	var ue *upstreamError
	// An HTTP answer, even an error, shows the upstream is there; a caller
	// that went away says nothing about it.
	u.brk.result(err != nil && ctx.Err() == nil && !errors.As(err, &ue))
	return resp, err
}

func (u *upstream) send(ctx context.Context, method, repo, kind, ref string, h http.Header) (*http.Response, error) {
	select {
	case u.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release := sync.OnceFunc(func() { <-u.sem })
	rt, err := u.transport(ctx, repo)
	if err != nil {
		release()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(u.timeout, cancel)
	done := func() { timer.Stop(); cancel(); release() }

	url := fmt.Sprintf("%s://%s/v2/%s/%s/%s", u.reg.Scheme(), u.reg.RegistryStr(), repo, kind, ref)
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		done()
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	client := &http.Client{Transport: rt}
	if !u.follow {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	start := time.Now()
	resp, err := client.Do(req)
	if !timer.Stop() {
		if resp != nil {
			resp.Body.Close()
		}
		done()
		return nil, fmt.Errorf("%s %s %s/%s: %w after %s", u.role, u.label, repo, kind, errTimeout, u.timeout)
	}
	if err != nil {
		done()
		return nil, fmt.Errorf("%s %s: %w", u.role, u.label, err)
	}
	metrics.ProxyUpstreamDuration.WithLabelValues(u.role, strings.TrimSuffix(kind, "s")).Observe(time.Since(start).Seconds())
	// 416 is an answer to pass on (to a Range), not a failure.
	if resp.StatusCode >= 400 && resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		defer done()
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, &upstreamError{role: u.role, registry: u.label, status: resp.StatusCode,
			retryAfter: resp.Header.Get("Retry-After"), body: strings.TrimSpace(string(b))}
	}
	// From here on only a stalled body read ends the request early.
	idle := time.AfterFunc(u.timeout, cancel)
	idle.Stop()
	resp.Body = &idleBody{ReadCloser: resp.Body, timer: idle, idle: u.timeout, done: done}
	return resp, nil
}

// transport returns repo's authenticated transport, made once however many
// ask at the same time.
func (u *upstream) transport(ctx context.Context, repo string) (http.RoundTripper, error) {
	if rt, ok := u.repos.Get(repo); ok {
		return rt, nil
	}
	v, err, _ := u.group.Do(repo, func() (any, error) {
		// Shared by every caller: not bound to the first one's context.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.timeout)
		defer cancel()
		a, err := u.auth(ctx)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s %s: %w", u.role, u.label, err)
		}
		scope := u.reg.Repo(repo).Scope(transport.PullScope)
		rt, err := transport.NewWithContext(ctx, u.reg, a, u.base, []string{scope})
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w: %v", errTimeout, err)
			}
			var te *transport.Error
			if errors.As(err, &te) {
				return nil, &upstreamError{role: u.role, registry: u.label, status: te.StatusCode, body: te.Error()}
			}
			return nil, fmt.Errorf("%s %s: %w", u.role, u.label, err)
		}
		u.repos.Set(repo, rt, transportTTL)
		return rt, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(http.RoundTripper), nil
}

// idleBody cancels its request when one Read waits longer than idle (a
// stalled upstream; a slow client does not count), and frees the request's
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
