// Package server runs the process's HTTP listeners one way (the webhook's,
// the proxy's and its metrics address, and the hub's): a header timeout by
// default, /healthz, /readyz and /metrics, and a graceful shutdown when the
// context ends.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

const (
	// shutdownTimeout is how long requests in flight may finish once the
	// context ends; those still running then are cut off.
	shutdownTimeout = 10 * time.Second
	// defaultReadHeaderTimeout bounds a client's request headers.
	defaultReadHeaderTimeout = 10 * time.Second
)

// Server is one address the process serves.
type Server struct {
	// Name says what it serves, in logs and errors: webhook, proxy, ...
	Name string
	// HTTP has the handler and the timeouts (ReadHeaderTimeout defaults to
	// defaultReadHeaderTimeout); with a TLSConfig it serves HTTPS. Its Addr
	// is where Listen listens.
	HTTP *http.Server
	// Listener is what it serves on: opened by Listen, or given.
	Listener net.Listener
}

// Listen opens the server's address.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("%s listen: %w", s.Name, err)
	}
	s.Listener = ln
	return nil
}

// Address is the address listened on.
func (s *Server) Address() string { return s.Listener.Addr().String() }

// Listen opens every server's address, or none: on a failure it closes
// those it opened.
func Listen(servers ...*Server) error {
	for i, s := range servers {
		if err := s.Listen(); err != nil {
			for _, opened := range servers[:i] {
				opened.Listener.Close()
			}
			return err
		}
	}
	return nil
}

// Serve serves every server on its listener until ctx ends or one of them
// fails, then shuts them all down, letting requests in flight finish for
// up to shutdownTimeout.
func Serve(ctx context.Context, log *slog.Logger, servers ...*Server) error {
	errc := make(chan error, len(servers))
	for _, s := range servers {
		if s.HTTP.ReadHeaderTimeout == 0 {
			s.HTTP.ReadHeaderTimeout = defaultReadHeaderTimeout
		}
		go func() {
			var err error
			if s.HTTP.TLSConfig != nil {
				err = s.HTTP.ServeTLS(s.Listener, "", "")
			} else {
				err = s.HTTP.Serve(s.Listener)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			} else if err != nil {
				err = fmt.Errorf("%s server: %w", s.Name, err)
			}
			errc <- err
		}()
	}
	pending := len(servers)
	var first error
	select {
	case first = <-errc:
		pending--
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, s := range servers {
		err := s.HTTP.Shutdown(sctx)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			log.Warn(s.Name+": requests still running when the shutdown grace period ended were cut off", "grace", shutdownTimeout)
		case err != nil && first == nil:
			first = fmt.Errorf("%s shutdown: %w", s.Name, err)
		}
	}
	for ; pending > 0; pending-- {
		if err := <-errc; first == nil {
			first = err
		}
	}
	return first
}

// Health adds the endpoints every server has: /healthz (ok while the
// process serves), /readyz (ready, or ok when nil) and /metrics.
func Health(mux *http.ServeMux, ready http.HandlerFunc) {
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
	if ready == nil {
		ready = ok
	}
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ready)
	mux.Handle("/metrics", metrics.Handler())
}
