package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// Readiness is a set of named conditions that must all be met before
// /readyz says ready, such as "target" and "pull-secrets". Once met, a
// condition stays met: a target outage later must not take every replica out
// of the Service, because the webhook then keeps images as they are.
type Readiness struct {
	mu      sync.Mutex
	pending map[string]bool
}

// Wait adds a condition to wait for.
func (r *Readiness) Wait(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string]bool{}
	}
	r.pending[name] = true
}

// Done marks a condition met.
func (r *Readiness) Done(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, name)
}

// waiting lists the conditions not met yet; none means ready.
func (r *Readiness) waiting() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.pending))
	for n := range r.pending {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// WaitForTarget marks condition "target" met once the target answers,
// probing every interval until ctx ends.
func WaitForTarget(ctx context.Context, t target.Target, r *Readiness, interval time.Duration, log *slog.Logger) {
	r.Wait("target")
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := probeTarget(pctx, t)
		cancel()
		if err == nil {
			r.Done("target")
			log.Info("target reachable", "target", t.Mapper().Base())
			return
		}
		log.Warn("target not reachable yet; not ready", "target", t.Mapper().Base(), "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// probeTarget asks the target's /v2/ endpoint; any answer but a server
// error means it is there (401 is the usual answer before a token).
func probeTarget(ctx context.Context, t target.Target) error {
	reg, err := name.NewRegistry(t.Mapper().Host, t.NameOptions()...)
	if err != nil {
		return fmt.Errorf("target host %s: %w", t.Mapper().Host, err)
	}
	u := fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := t.Transport().RoundTrip(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("probe %s: %s", u, resp.Status)
	}
	return nil
}
