package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook/webhooktest"
)

// The root command takes every flag of the original's and runs the webhook,
// as the original chart starts it; / answers 200 over HTTPS.
func TestRootRunsTheWebhook(t *testing.T) {
	dst := registryproc.Start(t, registryproc.Options{})
	cfg := writeConfig(t, "target:\n  type: generic\n  generic: {registry: \""+dst.Addr+"\", insecure: true}\n")
	ca, err := webhooktest.NewCA("root CA")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.WriteServing(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := registryproc.FreeAddr(t)
	stop := startCommand(t, "--config="+cfg, "--tls-cert-file="+certFile, "--tls-key-file="+keyFile,
		"--listen-address="+addr, "--dry-run=false", "--log-level=warn", "--log-format=json")
	defer stop()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "k8s-image-swapper") {
				t.Fatalf("/: %d %q", resp.StatusCode, body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ not served: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An unknown argument is an error, not the webhook.
func TestRootRefusesArguments(t *testing.T) {
	if _, err := run(t, "serve"); err == nil || !strings.Contains(err.Error(), `unknown command "serve"`) {
		t.Errorf("got %v", err)
	}
}

// --log-level and --log-format take the original's values; others are
// warnings, falling back as the original did.
func TestLogFlags(t *testing.T) {
	cfg := writeConfig(t, "logLevel: debug\n")
	out, err := run(t, "config", "validate", "--config", cfg, "--log-level=PANIC", "--log-format=console")
	if err != nil || strings.Contains(out, "warning") {
		t.Errorf("original values: %v\n%s", err, out)
	}
	out, err = run(t, "config", "validate", "--config", cfg, "--log-level=verbose", "--log-format=yaml")
	if err != nil || !strings.Contains(out, `warning: --log-level: invalid value "verbose"`) ||
		!strings.Contains(out, `warning: --log-format: invalid value "yaml"`) {
		t.Errorf("other values: %v\n%s", err, out)
	}
}
