package proxy

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Where a response came from, as metrics and logs name it.
const (
	fromTarget   = "target"
	fromSource   = "source"
	fromFallback = "fallback"
	fromError    = "error"
)

// exchange is one manifest or blob request being served.
type exchange struct {
	w        *recorder
	r        *http.Request
	call     registry.Path
	registry string
	image    fetch.Source // the image's source (or target repository), for the per-image count
	from     string
	err      error // why a transfer was aborted
	start    time.Time
}

func newExchange(w *recorder, r *http.Request, c registry.Path) *exchange {
	metrics.ProxyInFlight.Inc()
	return &exchange{w: w, r: r, call: c, registry: "unknown", start: time.Now()}
}

// metricKind names the content in metrics: manifest or blob.
func (ex *exchange) metricKind() string {
	if ex.call.Kind == registry.Blobs {
		return "blob"
	}
	return "manifest"
}

// done counts the request, also when it was aborted.
func (p *Proxy) done(ex *exchange) {
	metrics.ProxyInFlight.Dec()
	status := ex.w.status
	if status == 0 {
		status = http.StatusOK
	}
	from := ex.from
	if from == "" || status >= 400 {
		from = fromError
	}
	metrics.ProxyRequests.WithLabelValues(ex.registry, ex.metricKind(), from).Inc()
	if img := ex.image; img.Repo != "" && ex.call.Kind == registry.Manifests {
		metrics.ProxyImageRequests.WithLabelValues(img.Registry, p.imageLabels.label(img.String(), img.Repo)).Inc()
	}
	if from != fromError {
		metrics.ProxyBytes.WithLabelValues(from).Add(float64(ex.w.bytes))
	}
	if ex.err != nil {
		p.log.Warn("transfer aborted", "method", ex.r.Method, "path", ex.r.URL.Path, "error", ex.err)
	}
	p.log.Debug("request", "method", ex.r.Method, "path", ex.r.URL.Path, "ns", ex.r.URL.Query().Get("ns"),
		"status", status, "from", from, "bytes", ex.w.bytes, "duration", time.Since(ex.start).Round(time.Microsecond))
}

// use names the plan that serves the exchange, for its metrics: a target
// reference counts as its source's image when it has one.
func (ex *exchange) use(pl plan) {
	ex.registry, ex.image = pl.registry, fetch.Source{Registry: pl.registry, Repo: pl.targetRepo}
	if pl.src != nil {
		ex.image = *pl.src
	}
}

// maxImageLabels bounds the repositories one proxy counts by name.
const maxImageLabels = 1000

// imageLabels gives the repository label of the per-image count: the
// repository itself for the first maxImageLabels, "other" after them.
type imageLabels struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (l *imageLabels) label(key, repo string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	if !l.seen[key] {
		if len(l.seen) >= maxImageLabels {
			return "other"
		}
		l.seen[key] = true
	}
	return repo
}

// recorder notes the status and counts the bytes written.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom passes a file body to the ResponseWriter's ReadFrom, which on a
// plain TCP connection sends it with sendfile; it counts the bytes.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	rf, ok := r.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{r}, src)
	}
	n, err := rf.ReadFrom(src)
	r.bytes += n
	return n, err
}

// relayed are the headers passed on from an upstream's answer.
var relayed = []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Content-Range",
	"Accept-Ranges", "Location", "Etag", "Last-Modified"}

// relay passes an upstream's answer on, body and all, including the
// target's redirects to its storage (ECR, GAR), so those bytes never flow
// through the proxy.
func relay(ex *exchange, resp *http.Response, from string) {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// Only its Content-Range matters; some registries send a wrong length.
		rangeNotSatisfiable(ex, resp.Header.Get("Content-Range"))
		return
	}
	h := ex.w.Header()
	for _, k := range relayed {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	if loc, err := resp.Location(); err == nil {
		h.Set("Location", loc.String())
	}
	ex.from = from
	ex.w.WriteHeader(resp.StatusCode)
	if ex.r.Method == http.MethodHead {
		return
	}
	if err := copyBody(ex.w, resp.Body); err != nil {
		abort(ex, err)
	}
}

// 64 KiB: under 10 warm pulls the proxy's anonymous memory peaked at 16.8
// MiB with 256 KiB buffers, 13.0 with 128 and 11.0 with 64. The price is
// more, smaller reads and writes: about a fifth more proxy CPU than 256 KiB
// and perhaps 2-3 % of warm throughput, paid during pulls, where memory is
// held on every node all the time (BENCHMARKS.md). Pooled, so idle clients
// hold none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyBody copies with the pooled buffer. The writer is wrapped so that
// io.CopyBuffer uses that buffer rather than the ResponseWriter's ReadFrom,
// which falls back to a 32 KiB copy for a body that is neither a file nor a
// connection.
func copyBody(w io.Writer, r io.Reader) error {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	_, err := io.CopyBuffer(struct{ io.Writer }{w}, r, *buf)
	return err
}

// abort ends a response whose body cannot be completed: the client sees a
// broken transfer, never a short or wrong one that looks whole.
func abort(ex *exchange, err error) {
	ex.from = fromError
	if !errors.Is(err, ex.r.Context().Err()) {
		ex.err = err
	}
	panic(http.ErrAbortHandler)
}

// rangeNotSatisfiable answers 416 with the blob's size in Content-Range.
func rangeNotSatisfiable(ex *exchange, contentRange string) {
	if contentRange != "" {
		ex.w.Header().Set("Content-Range", contentRange)
	}
	ex.w.Header().Set("Content-Length", "0")
	ex.w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
}
