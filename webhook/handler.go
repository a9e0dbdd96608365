// Package webhook is the mutating admission webhook: it mirrors the images
// of new pods (and those an update of a pod changes, and of ephemeral
// containers added to running pods) into the target and points the pods at
// the mirror, never failing a pod because of its own trouble.
package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

// maxBodyBytes bounds a review; the API server's own request limit is
// 3 MiB, so anything larger is not from it.
const maxBodyBytes = 10 << 20

// defaultTimeout is the API server's default webhook timeoutSeconds, used
// when a request carries no ?timeout=.
const defaultTimeout = 10 * time.Second

// Handler answers AdmissionReviews posted to it.
type Handler struct {
	o Options
	// background bounds the existence checks of "always" + "delayed",
	// which run after the answer is sent.
	background chan struct{}
	// refreshed is when each tag of an imagePullPolicy: Always container
	// was last resolved at the source.
	refreshed *refreshTimes
}

// New checks o and returns the handler.
func New(o Options) (*Handler, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	zeroMetrics()
	return &Handler{o: o, background: make(chan struct{}, 64), refreshed: newRefreshTimes(o.TagTTL)}, nil
}

// ServeHTTP takes a POSTed admission.k8s.io/v1 or v1beta1 AdmissionReview
// and answers in the same version. Only an unreadable request gets an error
// status; every review is allowed.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	result := resultBadRequest
	defer func() {
		metrics.AdmissionRequests.WithLabelValues(result).Inc()
		metrics.AdmissionDuration.Observe(time.Since(start).Seconds())
	}()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.o.Logger.Warn("admission review refused: body too large", "limit", maxBodyBytes, "remote", r.RemoteAddr)
			http.Error(w, "request body over 10 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		h.o.Logger.Warn("admission review unreadable", "error", err, "remote", r.RemoteAddr)
		http.Error(w, "cannot read request body", http.StatusBadRequest)
		return
	}
	req, version, err := decodeReview(body)
	if err != nil {
		h.o.Logger.Warn("admission review refused", "error", err, "remote", r.RemoteAddr)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), budget(r.URL.Query().Get("timeout")))
	defer cancel()
	resp, result := h.admit(ctx, req)
	out, err := encodeReview(version, req.uid, resp)
	if err != nil {
		// Not reachable with the versions decodeReview accepts.
		result = resultBadRequest
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

// budget is the time the webhook gives itself: the API server's timeout for
// this call (it adds ?timeout=10s) less a margin to answer in, so a slow
// check ends in an allowed review and not in the API server giving up.
func budget(param string) time.Duration {
	t := defaultTimeout
	if d, err := time.ParseDuration(param); err == nil && d > 0 {
		t = d
	}
	margin := min(t/5, time.Second)
	return t - margin
}
