package webhook

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/dryrun"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/server"
)

const rootPage = `<html><head><title>k8s-image-swapper</title></head><body><h1>k8s-image-swapper</h1>
<ul><li><a href="/metrics">Metrics</a></li><li><a href="/healthz">Health</a></li><li><a href="/readyz">Readiness</a></li></ul>
</body></html>
`

// defaultAddress is listenAddress's default, the original's.
const defaultAddress = ":8443"

// ServerOptions configure the webhook's HTTP server.
type ServerOptions struct {
	Addr string // listen address (default defaultAddress)
	// CertFile and KeyFile enable HTTPS; both or neither. They are reloaded
	// when they change.
	CertFile, KeyFile string
	// Webhook serves POST /webhook (a *Handler).
	Webhook   http.Handler
	Readiness *Readiness // nil: always ready
	// DryRun makes /readyz say that images are neither copied nor rewritten.
	DryRun bool
	Logger *slog.Logger
}

// Server serves /webhook, /, /healthz, /readyz and /metrics.
type Server struct {
	o   ServerOptions
	srv *server.Server
}

// NewServer checks o (and reads the certificate) and returns the server.
func NewServer(o ServerOptions) (*Server, error) {
	o.Addr = cmp.Or(o.Addr, defaultAddress)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	if o.Webhook == nil {
		return nil, errors.New("webhook server: no handler")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("webhook server: give both --tls-cert-file and --tls-key-file, or neither")
	}
	mux := http.NewServeMux()
	mux.Handle("/webhook", o.Webhook)
	// The original answered / with a page; its chart probes it for liveness
	// and readiness, so it answers 200 as long as the process serves.
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(rootPage))
	})
	server.Health(mux, func(w http.ResponseWriter, _ *http.Request) {
		if o.Readiness != nil {
			if p := o.Readiness.waiting(); len(p) > 0 {
				http.Error(w, "waiting for: "+strings.Join(p, ", "), http.StatusServiceUnavailable)
				return
			}
		}
		if o.DryRun {
			_, _ = w.Write([]byte("ok, " + dryrun.Message + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	srv := &http.Server{
		Addr:              o.Addr,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		// The API server waits at most 30 s for a webhook.
		ReadTimeout:    30 * time.Second,
		WriteTimeout:   35 * time.Second,
		IdleTimeout:    90 * time.Second,
		MaxHeaderBytes: 64 << 10,
		// TLS handshake failures (scanners, probes) are not worth a warning.
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	if o.CertFile != "" {
		certs, err := newCertLoader(o.CertFile, o.KeyFile, o.Logger)
		if err != nil {
			return nil, err
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	}
	return &Server{o: o, srv: &server.Server{Name: "webhook", HTTP: srv}}, nil
}

// ListenAndServe listens on Addr and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.srv.Listen(); err != nil {
		return err
	}
	return s.Serve(ctx, s.srv.Listener)
}

// Serve serves on ln until ctx ends, then lets requests in flight finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.srv.Listener = ln
	if s.srv.HTTP.TLSConfig != nil {
		s.o.Logger.Info("webhook serving HTTPS", "address", ln.Addr().String())
	} else {
		s.o.Logger.Warn("webhook serving plain HTTP: the API server requires HTTPS; give --tls-cert-file and --tls-key-file",
			"address", ln.Addr().String())
	}
	return server.Serve(ctx, s.o.Logger, s.srv)
}
