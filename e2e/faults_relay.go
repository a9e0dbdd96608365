//go:build e2e

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// faultRelay is a reverse proxy in front of a real registry that injects a
// fault: flipped bytes in blob bodies, 429 answers, or a slow blob stream.
// Registries build upload Locations from the Host header, so it is kept.
type faultRelay struct {
	Addr    string
	backend string
	srv     *http.Server

	// corrupt flips one byte in every blob GET body while set.
	corrupt atomic.Bool
	// throttle, when non-nil, decides per request whether to answer 429
	// (with Retry-After: 1) instead of passing it on; called under mu.
	throttle func(r *http.Request) bool
	// rate, when > 0, paces blob GET bodies to this many bytes a second.
	rate atomic.Int64

	mu       sync.Mutex
	seen     []relayRequest
	blobSent atomic.Int64 // blob body bytes written to clients
}

// relayRequest is one request the relay saw and what it answered.
type relayRequest struct {
	Method, Path, Range string
	Status              int
	Start, At           time.Time // arrived, answered
}

// startFaultRelay listens on a free loopback port (or addr) in front of backend.
func startFaultRelay(t *testing.T, backend, addr string) *faultRelay {
	t.Helper()
	if addr == "" {
		addr = registryproc.FreeAddr(t)
	}
	f := &faultRelay{Addr: addr, backend: backend}
	u := &url.URL{Scheme: "http", Host: backend}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && resp.StatusCode < 300 && strings.Contains(resp.Request.URL.Path, "/blobs/sha256:") {
			resp.Body = &relayBody{ReadCloser: resp.Body, f: f, flip: f.corrupt.Load()}
		}
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		f.mu.Lock()
		limit := f.throttle != nil && f.throttle(r)
		f.mu.Unlock()
		if limit {
			w.Header().Set("Retry-After", "1")
			sw.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(sw, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
		} else {
			rp.ServeHTTP(sw, r)
		}
		f.mu.Lock()
		f.seen = append(f.seen, relayRequest{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Status: sw.status, Start: start, At: time.Now()})
		f.mu.Unlock()
	})}
	go func() { _ = f.srv.Serve(l) }()
	t.Cleanup(f.Close)
	return f
}

// Close stops the relay and its connections.
func (f *faultRelay) Close() { _ = f.srv.Close() }

// Requests is what the relay has seen so far.
func (f *faultRelay) Requests() []relayRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]relayRequest(nil), f.seen...)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if fl, ok := w.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// relayBody flips the first byte it passes on (when flip) and paces reads.
type relayBody struct {
	io.ReadCloser
	f       *faultRelay
	flip    bool
	flipped bool
}

func (b *relayBody) Read(p []byte) (int, error) {
	if r := b.f.rate.Load(); r > 0 && len(p) > 64<<10 {
		p = p[:64<<10]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 && b.flip && !b.flipped {
		p[0] ^= 0xff
		b.flipped = true
	}
	if r := b.f.rate.Load(); r > 0 && n > 0 {
		time.Sleep(time.Duration(int64(n) * int64(time.Second) / r))
	}
	b.f.blobSent.Add(int64(n))
	return n, err
}

// hungServer accepts connections on addr and never answers: a registry
// that is up at the TCP level and stuck above it.
type hungServer struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

// startHung listens on addr until Close (and the test's end).
func startHung(t *testing.T, addr string) *hungServer {
	t.Helper()
	var l net.Listener
	var err error
	// The port was just freed by a killed registry; it may take a moment.
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	h := &hungServer{l: l, done: make(chan struct{})}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(h.Close)
	return h
}

// Accepted is how many connections it holds.
func (h *hungServer) Accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Close stops listening and drops every held connection.
func (h *hungServer) Close() {
	_ = h.l.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		_ = c.Close()
	}
	h.conns = nil
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
