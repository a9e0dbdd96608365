package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
)

// Client asks a hub's API what the webhook asks its copy engine, so one
// image admitted on many pods at once is checked and copied once for the
// cluster. What the hub cannot answer (it is down, erring, or slower than
// timeout), local answers: the webhook's own engine, or nil when the
// webhook cannot copy itself (its target is the hub's store).
type Client struct {
	base    *url.URL
	http    *http.Client
	timeout time.Duration
	local   Mirror
	token   func() (string, error)
	log     *slog.Logger
}

// NewClient asks the hub at u, and local (may be nil) when the hub fails.
// token (may be nil) is the bearer token each question carries: the hub
// copies only for callers it knows (the chart's projected ServiceAccount
// token for Audience).
func NewClient(u *url.URL, rt http.RoundTripper, timeout time.Duration, local Mirror, token func() (string, error), log *slog.Logger) *Client {
	return &Client{base: u, http: &http.Client{Transport: rt}, timeout: timeout, local: local, token: token, log: log}
}

// Audience is what the tokens of the hub's callers are issued for.
const Audience = "k8s-image-swapper-hub"

// TokenFile reads a token from path at each question: the kubelet rewrites
// a projected token before it expires.
func TokenFile(path string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("hub token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
}

// Exists asks the hub whether the target has src.
func (c *Client) Exists(ctx context.Context, src reference.Named) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	a, err := c.ask(ctx, http.MethodGet, existsPath, url.Values{"image": {src.String()}})
	if err == nil {
		return a.Present, nil
	}
	if c.local == nil {
		return false, err
	}
	c.fellBack(src, err)
	return c.local.Exists(ctx, src)
}

// Mirror has the hub copy req's image per how; a request with the pod's
// own credentials (req.Keychain) is copied here, for credentials do not
// travel.
func (c *Client) Mirror(ctx context.Context, how policy.Copy, deadline time.Duration, req mirror.Request) error {
	if how == policy.CopyNone {
		return nil
	}
	if req.Keychain != nil && c.local != nil {
		return c.local.Mirror(ctx, how, deadline, req)
	}
	wait := c.timeout
	if how != policy.CopyDelayed {
		wait += deadline
	}
	actx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, err := c.ask(actx, http.MethodPost, copyPath, url.Values{"image": {req.Source.String()},
		"policy": {string(how)}, "deadline": {deadline.String()}})
	if err == nil || c.local == nil {
		return err
	}
	c.fellBack(req.Source, err)
	return c.local.Mirror(ctx, how, deadline, req)
}

func (c *Client) fellBack(src reference.Named, err error) {
	metrics.RelayRequests.WithLabelValues("hub-api", "fallback").Inc()
	c.log.Info("hub did not answer; deciding here", "image", src.String(), "error", err)
}

func (c *Client) ask(ctx context.Context, method, path string, q url.Values) (answer, error) {
	u := *c.base
	u.Path, u.RawQuery = path, q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return answer{}, err
	}
	if c.token != nil {
		tok, err := c.token()
		if err != nil {
			return answer{}, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("hub %s: %w", c.base.Host, err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a); err != nil {
		return answer{}, fmt.Errorf("hub %s answered %s: %w", c.base.Host, resp.Status, err)
	}
	if resp.StatusCode >= 300 {
		return answer{}, fmt.Errorf("hub %s answered %s: %s", c.base.Host, resp.Status, a.Error)
	}
	metrics.RelayRequests.WithLabelValues("hub-api", "served").Inc()
	return a, nil
}
