// Package swapperbin finds the k8s-image-swapper binaries for tests that run
// them as processes: $K8S_IMAGE_SWAPPER_BIN and $K8S_IMAGE_SWAPPER_PROXY_BIN
// (make builds them), else one build of each per test process.
package swapperbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Env names the binary to use instead of building one.
const Env = "K8S_IMAGE_SWAPPER_BIN"

// ProxyEnv names the node proxy binary (k8s-image-swapper-proxy) to use
// instead of building one.
const ProxyEnv = "K8S_IMAGE_SWAPPER_PROXY_BIN"

// build is one binary built on first use.
type build struct {
	name string
	tags string
	once sync.Once
	path string
	err  error
}

var (
	full  = &build{name: "k8s-image-swapper"}
	proxy = &build{name: "k8s-image-swapper-proxy", tags: "nodeproxy"}

	dirOnce sync.Once
	dir     string
	dirErr  error
)

// Path returns the binary, building it on first use when Env is unset.
func Path(tb testing.TB) string {
	tb.Helper()
	return full.get(tb, Env)
}

// ProxyPath returns the node proxy binary (the cmd built with -tags
// nodeproxy: the proxy command alone, as the chart's DaemonSet runs it),
// building it on first use when ProxyEnv is unset.
func ProxyPath(tb testing.TB) string {
	tb.Helper()
	return proxy.get(tb, ProxyEnv)
}

// ForCommand is the binary a container of our image runs with command:
// the entrypoint (k8s-image-swapper) for none, else the image's binary at
// that path; false for a command that names no binary of the image.
func ForCommand(tb testing.TB, command []string) (string, bool) {
	tb.Helper()
	switch strings.Join(command, " ") {
	case "", "/usr/local/bin/k8s-image-swapper":
		return Path(tb), true
	case "/usr/local/bin/k8s-image-swapper-proxy":
		return ProxyPath(tb), true
	}
	return "", false
}

func (b *build) get(tb testing.TB, env string) string {
	tb.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	b.once.Do(func() {
		dirOnce.Do(func() { dir, dirErr = os.MkdirTemp("", "k8s-image-swapper-bin-") })
		if b.err = dirErr; b.err != nil {
			return
		}
		b.path = filepath.Join(dir, b.name)
		// By import path: it builds from any directory of the module.
		cmd := exec.Command("go", "build", "-tags", b.tags, "-o", b.path, "github.com/k8s-image-swapper/k8s-image-swapper/cmd/k8s-image-swapper")
		if out, e := cmd.CombinedOutput(); e != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.name, e, out)
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

// Remove deletes the binaries Path and ProxyPath built; TestMain calls it
// after the tests.
func Remove() {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}
