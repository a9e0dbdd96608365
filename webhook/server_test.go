package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/webhook/webhooktest"
)

type testServer struct {
	url    string
	client *http.Client
	stop   func()
}

func startServer(t *testing.T, o ServerOptions) *testServer {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	scheme := "http"
	if o.CertFile != "" {
		scheme = "https"
	}
	return &testServer{url: scheme + "://" + ln.Addr().String(), client: &http.Client{Timeout: 10 * time.Second}, stop: stop}
}

func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerHTTPS(t *testing.T) {
	dir := t.TempDir()
	ca, err := webhooktest.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.WriteServing(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newTestHandler(t, inTarget, nil)
	ready := &Readiness{}
	ready.Wait("target")
	s := startServer(t, ServerOptions{CertFile: certFile, KeyFile: keyFile, Webhook: h, Readiness: ready})
	c := tlsClient(ca.Pool())

	if code, _ := get(t, c, s.url+"/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get(t, c, s.url+"/readyz"); code != 503 || !strings.Contains(body, "target") {
		t.Errorf("/readyz before the target answered: %d %q", code, body)
	}
	// The original chart probes / for liveness and readiness.
	if code, body := get(t, c, s.url+"/"); code != 200 || !strings.Contains(body, "k8s-image-swapper") {
		t.Errorf("/: %d %q", code, body)
	}
	if code, _ := get(t, c, s.url+"/nothing-here"); code != 404 {
		t.Errorf("/nothing-here: %d, want 404", code)
	}
	ready.Done("target")
	if code, _ := get(t, c, s.url+"/readyz"); code != 200 {
		t.Errorf("/readyz %d", code)
	}

	resp, err := c.Post(s.url+"/webhook?timeout=5s", "application/json", bytes.NewReader(readTestdata(t, "simple-pod.json")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if a := decodeAnswer(t, body); resp.StatusCode != 200 || a.Response.Patch == nil {
		t.Fatalf("review over HTTPS: %d %s", resp.StatusCode, body)
	}
	resp, err = c.Post(s.url+"/webhook", "application/json", bytes.NewReader(bytes.Repeat([]byte("x"), maxBodyBytes+10)))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("11 MiB body: %d, want 413", resp.StatusCode)
		}
	} // a reset connection after the 413 is also a refusal

	_, metricsText := get(t, c, s.url+"/metrics")
	for _, m := range []string{"k8s_image_swapper_admission_requests_total", "k8s_image_swapper_admission_duration_seconds",
		"k8s_image_swapper_image_decisions_total"} {
		if !strings.Contains(metricsText, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	// Plain HTTP is not served on the TLS port.
	if resp, err := http.Get(strings.Replace(s.url, "https", "http", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered on the TLS port")
		}
	}
}

func TestServerReloadsCertificate(t *testing.T) {
	dir := t.TempDir()
	ca1, _ := webhooktest.NewCA("first CA")
	ca2, _ := webhooktest.NewCA("second CA")
	certFile, keyFile, err := ca1.WriteServing(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newTestHandler(t, inTarget, nil)
	s := startServer(t, ServerOptions{CertFile: certFile, KeyFile: keyFile, Webhook: h})
	if code, _ := get(t, tlsClient(ca1.Pool()), s.url+"/healthz"); code != 200 {
		t.Fatalf("first certificate: %d", code)
	}

	// A half-done rotation (new certificate, old key) keeps the old pair.
	cert2, key2, err := ca2.Issue("127.0.0.1", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, cert2, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(certCheckInterval + 100*time.Millisecond)
	if code, _ := get(t, tlsClient(ca1.Pool()), s.url+"/healthz"); code != 200 {
		t.Fatalf("old pair not kept during a half-done rotation: %d", code)
	}
	if err := os.WriteFile(keyFile, key2, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := tlsClient(ca2.Pool()).Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated certificate not served: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestServerPlainHTTPAndOptions(t *testing.T) {
	h, _ := newTestHandler(t, inTarget, nil)
	s := startServer(t, ServerOptions{Webhook: h})
	if code, _ := get(t, s.client, s.url+"/healthz"); code != 200 {
		t.Errorf("/healthz over HTTP: %d", code)
	}
	s.stop()

	if _, err := NewServer(ServerOptions{Webhook: h, CertFile: "a.crt"}); err == nil {
		t.Error("a certificate without a key was accepted")
	}
	if _, err := NewServer(ServerOptions{Webhook: h, CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}); err == nil {
		t.Error("missing certificate files were accepted")
	}
	if _, err := NewServer(ServerOptions{}); err == nil {
		t.Error("no handler was accepted")
	}
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// A dry run is never silent: /readyz says so (the warning in the logs is
// package dryrun's).
func TestDryRunSaysSo(t *testing.T) {
	h, _ := newTestHandler(t, inTarget, nil)
	s := startServer(t, ServerOptions{Webhook: h, DryRun: true})
	if code, body := get(t, s.client, s.url+"/readyz"); code != 200 || !strings.Contains(body, "dry run (dryRun: true)") {
		t.Errorf("/readyz in a dry run: %d %q", code, body)
	}
}
