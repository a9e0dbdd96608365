package probe

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.Error(w, "not here", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if body, err := Get(ctx, srv.URL+"/healthz", Options{CAFile: ca}); err != nil || body != "ok" {
		t.Errorf("trusted CA: %q, %v", body, err)
	}
	if _, err := Get(ctx, srv.URL+"/other", Options{CAFile: ca}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a 503 is not an error: %v", err)
	}
	// The system roots do not trust the test server: the certificate is checked.
	if _, err := Get(ctx, srv.URL+"/healthz", Options{}); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
	if _, err := Get(ctx, srv.URL+"/healthz", Options{CAFile: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
