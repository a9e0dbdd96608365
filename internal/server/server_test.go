package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestServeAndShutDown(t *testing.T) {
	mux := http.NewServeMux()
	Health(mux, nil)
	a := &Server{Name: "a", HTTP: &http.Server{Addr: "127.0.0.1:0", Handler: mux}}
	b := &Server{Name: "b", HTTP: &http.Server{Addr: "127.0.0.1:0", Handler: mux}}
	if err := Listen(a, b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, slog.New(slog.DiscardHandler), a, b) }()
	for _, s := range []*Server{a, b} {
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			resp, err := http.Get("http://" + s.Address() + p)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || p != "/metrics" && string(body) != "ok\n" {
				t.Errorf("%s %s: %s %q", s.Name, p, resp.Status, body)
			}
		}
	}
	if a.HTTP.ReadHeaderTimeout != defaultReadHeaderTimeout {
		t.Errorf("ReadHeaderTimeout %s", a.HTTP.ReadHeaderTimeout)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after the context ended: %v", err)
	}
}

// When one address cannot be listened on, none is left open.
func TestListenAllOrNone(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	a := &Server{Name: "a", HTTP: &http.Server{Addr: "127.0.0.1:0"}}
	b := &Server{Name: "b", HTTP: &http.Server{Addr: taken.Addr().String()}}
	err = Listen(a, b)
	if err == nil || !strings.HasPrefix(err.Error(), "b listen: ") {
		t.Fatalf("Listen: %v", err)
	}
	if _, err := a.Listener.Accept(); err == nil {
		t.Error("the first listener was left open")
	}
}
