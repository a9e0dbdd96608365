package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/peers"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
)

// The webhook's questions to the hub, answered by the hub's copy engine so
// that however many webhook replicas admit an image at once, it is checked
// and copied once (by the replica that owns its repository):
//
//	GET  /hub/v1/exists?image=REF                      {"present": bool}
//	POST /hub/v1/copy?image=REF&policy=P&deadline=D    {"copied": true} or {"queued": true}
//
// Errors are {"error": "..."} with a status that says whose trouble it is.
const (
	existsPath = "/hub/v1/exists"
	copyPath   = "/hub/v1/copy"
)

// Mirror is what the API serves and its client stands in for: the copy
// engine's answers (*mirror.Engine), as the webhook asks them.
type Mirror interface {
	Exists(ctx context.Context, src reference.Named) (bool, error)
	Mirror(ctx context.Context, how policy.Copy, deadline time.Duration, req mirror.Request) error
}

// API serves /hub/v1/ from engine; with set (several replicas), a question
// about a repository another replica owns is passed to it, and answered
// here when the owner cannot.
type API struct {
	engine Mirror
	set    *peers.Set
	client *http.Client
	log    *slog.Logger
}

// NewAPI serves engine's answers; set may be nil (one replica).
func NewAPI(engine Mirror, set *peers.Set, rt http.RoundTripper, log *slog.Logger) *API {
	metrics.Zero(metrics.HubAPIRequests, []string{"exists", "copy"})
	return &API{engine: engine, set: set, client: &http.Client{Transport: noRelay{rt}}, log: log}
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+existsPath, a.serve)
	mux.HandleFunc("POST "+copyPath, a.serve)
}

type answer struct {
	Present bool   `json:"present,omitempty"`
	Copied  bool   `json:"copied,omitempty"`
	Queued  bool   `json:"queued,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	src, err := imageref.Parse(q.Get("image"))
	if err != nil {
		reply(w, http.StatusBadRequest, answer{Error: err.Error()})
		return
	}
	if a.forward(w, r, src) {
		return
	}
	ctx := r.Context()
	if r.URL.Path == existsPath {
		metrics.HubAPIRequests.WithLabelValues("exists").Inc()
		present, err := a.engine.Exists(ctx, src)
		if err != nil {
			reply(w, http.StatusBadGateway, answer{Error: err.Error()})
			return
		}
		reply(w, http.StatusOK, answer{Present: present})
		return
	}
	metrics.HubAPIRequests.WithLabelValues("copy").Inc()
	how, err := policy.ParseCopy(q.Get("policy"))
	if err != nil {
		reply(w, http.StatusBadRequest, answer{Error: err.Error()})
		return
	}
	deadline, err := time.ParseDuration(q.Get("deadline"))
	if err != nil && how != policy.CopyDelayed {
		reply(w, http.StatusBadRequest, answer{Error: fmt.Sprintf("deadline %q: %v", q.Get("deadline"), err)})
		return
	}
	if err := a.engine.Mirror(ctx, how, deadline, mirror.Request{Source: src}); err != nil {
		status := http.StatusBadGateway
		switch {
		case errors.Is(err, mirror.ErrQueueFull):
			status = http.StatusServiceUnavailable
		case errors.Is(err, context.DeadlineExceeded):
			status = http.StatusGatewayTimeout
		}
		reply(w, status, answer{Error: err.Error()})
		return
	}
	if how == policy.CopyDelayed || how == policy.CopyNone {
		reply(w, http.StatusAccepted, answer{Queued: true})
		return
	}
	reply(w, http.StatusOK, answer{Copied: true})
}

// forward passes r to the replica that owns src's repository, when that is
// another and r was not passed on already; false when r is to be answered
// here (also when the owner cannot be reached).
func (a *API) forward(w http.ResponseWriter, r *http.Request, src reference.Named) bool {
	if a.set == nil || r.Header.Get(fetch.NoRelayHeader) != "" {
		return false
	}
	owner, self := Owner(a.set, fetch.Source{Registry: reference.Domain(src), Repo: reference.Path(src)})
	if self {
		return false
	}
	u := url.URL{Scheme: "http", Host: owner, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), nil)
	if err != nil {
		return false
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		req.Header.Set("Authorization", auth) // the owner checks the caller again
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.log.Info("hub owner unreachable; answering here", "owner", owner, "image", src.String(), "error", err)
		return false
	}
	defer resp.Body.Close()
	metrics.HubForwards.Inc()
	for _, k := range []string{"Content-Type", "Content-Length"} {
		w.Header().Set(k, resp.Header.Get(k))
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	return true
}

func reply(w http.ResponseWriter, status int, a answer) {
	b, _ := json.Marshal(a)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
