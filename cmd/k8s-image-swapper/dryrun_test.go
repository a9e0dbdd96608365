package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// In a dry run the node setup writes no hosts.toml, and undoes what an
// earlier run wrote.
func TestContainerdConfigDryRun(t *testing.T) {
	certs := t.TempDir()
	body := "logLevel: error\nproxy:\n  registries: [docker.io]\n"
	if out, err := run(t, "containerd-config", "--config", writeConfig(t, "dryRun: true\n"+body), "--certs-dir", certs); err != nil ||
		!strings.Contains(out, "dry run (dryRun: true): no hosts.toml written") {
		t.Fatalf("%v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(certs); len(entries) != 0 {
		t.Fatalf("a dry run wrote %v", entries)
	}
	if _, err := run(t, "containerd-config", "--config", writeConfig(t, body), "--certs-dir", certs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(certs, "docker.io", "hosts.toml")); err != nil {
		t.Fatalf("not written without dryRun: %v", err)
	}
	if _, err := run(t, "containerd-config", "--config", writeConfig(t, "dryRun: true\n"+body), "--certs-dir", certs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(certs, "docker.io")); !os.IsNotExist(err) {
		t.Errorf("a dry run left the earlier hosts.toml in place: %v", err)
	}
}

// In a dry run the proxy serves pulls and copies nothing into the target;
// without it the same pull is copied.
func TestProxyDryRunCopiesNothing(t *testing.T) {
	src := registryproc.Start(t, registryproc.Options{})
	images.Push(t, src.Addr+"/team/app:v1", images.Image(t, 1024, 1, "linux/amd64"))
	for _, dry := range []bool{true, false} {
		t.Run(fmt.Sprintf("dryRun=%t", dry), func(t *testing.T) {
			dst := registryproc.Start(t, registryproc.Options{})
			addr := registryproc.FreeAddr(t)
			cfg := writeConfig(t, fmt.Sprintf("dryRun: %t\nlogLevel: error\nproxy:\n  registries: [%q]\ntarget:\n  type: generic\n  generic: {registry: %q, insecure: true}\n",
				dry, src.Addr, dst.Addr))
			stop := startCommand(t, "proxy", "--config", cfg, "--listen-address", addr)
			defer stop()
			url := "http://" + addr + "/v2/team/app/manifests/v1?ns=" + src.Addr
			waitHTTP(t, "http://"+addr+"/healthz")
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("pull through the proxy: %s", resp.Status)
			}
			metrics := httpBody(t, "http://"+addr+"/metrics")
			want := "k8s_image_swapper_dry_run 0"
			if dry {
				want = "k8s_image_swapper_dry_run 1"
			}
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for dst.Count(http.MethodPut, "/manifests/") == 0 && !dry && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if dry {
				time.Sleep(time.Second) // a copy would have started by now
			}
			if copied := dst.Count(http.MethodPut, "/manifests/") > 0; copied == dry {
				t.Errorf("dryRun %t: copied into the target: %t", dry, copied)
			}
		})
	}
}

// startCommand runs the command line until the test stops it.
func startCommand(t *testing.T, args ...string) (stop func()) {
	t.Helper()
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", args[0], err)
		}
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not served: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
