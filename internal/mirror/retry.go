package mirror

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

// retryTransport retries requests a registry answered with 429 or a 5xx,
// honouring Retry-After, and holds back every request to a host that asked
// for a pause (Docker Hub's rate limit is per client, not per request).
type retryTransport struct {
	next    http.RoundTripper
	retries int           // extra attempts after the first
	waitMax time.Duration // cap on one wait

	mu     sync.Mutex
	paused map[string]time.Time // host -> no requests before
}

func retryable(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		if err := t.waitHost(ctx, req.URL.Host); err != nil {
			return nil, err
		}
		r := req
		if attempt > 0 {
			// Only a request whose body can be sent again is retried.
			if req.Body != nil && req.Body != http.NoBody {
				if req.GetBody == nil {
					return nil, errNotReplayable
				}
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r = req.Clone(ctx)
				r.Body = body
			}
		}
		resp, err := t.next.RoundTrip(r)
		if err != nil || !retryable(resp.StatusCode) || attempt >= t.retries ||
			(req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
			return resp, err
		}
		wait := t.backoff(attempt, resp)
		metrics.UpstreamRetries.WithLabelValues(req.URL.Host, strconv.Itoa(resp.StatusCode)).Inc()
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			t.pause(req.URL.Host, wait)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

type replayError struct{}

func (replayError) Error() string { return "request body cannot be replayed for a retry" }

var errNotReplayable error = replayError{}

// backoff is Retry-After when given, else exponential with jitter.
func (t *retryTransport) backoff(attempt int, resp *http.Response) time.Duration {
	if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
		return min(d, t.waitMax)
	}
	d := time.Duration(100<<min(attempt, 10)) * time.Millisecond
	d += time.Duration(rand.Int64N(int64(d) / 2))
	return min(d, t.waitMax)
}

func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0), true
	}
	return 0, false
}

func (t *retryTransport) pause(host string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.paused == nil {
		t.paused = map[string]time.Time{}
	}
	if until := time.Now().Add(d); until.After(t.paused[host]) {
		t.paused[host] = until
	}
}

func (t *retryTransport) waitHost(ctx context.Context, host string) error {
	t.mu.Lock()
	until := t.paused[host]
	t.mu.Unlock()
	if d := time.Until(until); d > 0 {
		return sleep(ctx, d)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
