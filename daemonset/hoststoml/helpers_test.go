package hoststoml

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	clog "github.com/containerd/log"
)

const testProxy = "http://127.0.0.1:7439"

func TestMain(m *testing.M) {
	// containerd's loader logs files it ignores; the tests assert on that instead.
	clog.L.Logger.SetOutput(io.Discard)
	os.Exit(m.Run())
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func testOptions(certsDir string, hosts ...string) Options {
	o := Options{CertsDir: certsDir, ProxyURL: testProxy, Logger: quiet()}
	for _, h := range hosts {
		o.Hosts = append(o.Hosts, Host{Name: h})
	}
	return o
}

// containerdHosts is what containerd itself makes of certsDir for host.
func containerdHosts(t testing.TB, certsDir, host string) []docker.RegistryHost {
	t.Helper()
	hosts, err := loadHosts(certsDir, host)
	if err != nil {
		t.Fatalf("containerd ConfigureHosts(%s): %v", host, err)
	}
	return hosts
}

func loadHosts(certsDir, host string) ([]docker.RegistryHost, error) {
	return config.ConfigureHosts(context.Background(), config.HostOptions{
		HostDir: config.HostDirFromRoot(certsDir),
	})(host)
}

type endpoint struct {
	scheme, host, path string
	caps               docker.HostCapabilities
}

func endpoints(hosts []docker.RegistryHost) []endpoint {
	out := make([]endpoint, len(hosts))
	for i, h := range hosts {
		out[i] = endpoint{h.Scheme, h.Host, h.Path, h.Capabilities}
	}
	return out
}

const (
	pullResolve = docker.HostCapabilityPull | docker.HostCapabilityResolve
	allCaps     = pullResolve | docker.HostCapabilityPush | docker.HostCapabilityReferrers
)

var proxyEndpoint = endpoint{"http", "127.0.0.1:7439", "/v2", pullResolve}

func mustApply(t *testing.T, o Options) Result {
	t.Helper()
	res, err := Apply(context.Background(), o)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func mustCleanup(t *testing.T, o Options) Result {
	t.Helper()
	res, err := Cleanup(context.Background(), o)
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	return res
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// backdate sets a file's mtime into the past, so a rewrite shows.
func backdate(t *testing.T, path string) time.Time {
	t.Helper()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return old
}

func mtime(t *testing.T, path string) time.Time {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}
