//go:build !nodeproxy

package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	swapperbin.Remove()
	os.Exit(code)
}

// The node proxy build (-tags nodeproxy, k8s-image-swapper-proxy) links none
// of what only the webhook, the hub and the chart's hooks use: their
// packages' init code and data are most of a proxy's resident memory.
func TestNodeProxyBuildLinks(t *testing.T) {
	list := func(tags string) []string {
		out, err := exec.Command("go", "list", "-deps", "-tags", tags, ".").CombinedOutput()
		if err != nil {
			t.Fatalf("go list -tags %q: %v\n%s", tags, err, out)
		}
		return strings.Fields(string(out))
	}
	const mod = "github.com/k8s-image-swapper/k8s-image-swapper/"
	unwanted := []string{"k8s.io/", "sigs.k8s.io/", mod + "webhook", mod + "internal/pullsecrets",
		mod + "internal/peers/endpointslices", mod + "internal/rollout", mod + "daemonset/"}
	linked := func(deps []string, prefix string) bool {
		return slices.ContainsFunc(deps, func(d string) bool { return strings.HasPrefix(d, prefix) })
	}
	full, slim := list(""), list("nodeproxy")
	for _, u := range unwanted {
		if !linked(full, u) {
			t.Errorf("the full build does not link %s: this test no longer checks anything for it", u)
		}
		if linked(slim, u) {
			t.Errorf("the nodeproxy build links %s", u)
		}
	}
	for _, want := range []string{mod + "proxy", mod + "internal/target", mod + "internal/fetch", mod + "internal/mirror"} {
		if !linked(slim, want) {
			t.Errorf("the nodeproxy build does not link %s", want)
		}
	}
}

// k8s-image-swapper-proxy's proxy is `k8s-image-swapper proxy`: the same
// flags, help and defaults, so the chart passes either the same arguments.
func TestNodeProxyBinaryIsTheProxyCommand(t *testing.T) {
	help := func(bin string) string {
		out, err := exec.Command(bin, "proxy", "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s proxy --help: %v\n%s", bin, err, out)
		}
		return strings.ReplaceAll(string(out), "k8s-image-swapper-proxy ", "k8s-image-swapper ")
	}
	full, slim := help(swapperbin.Path(t)), help(swapperbin.ProxyPath(t))
	if full != slim {
		t.Errorf("proxy --help differs:\nk8s-image-swapper:\n%s\nk8s-image-swapper-proxy:\n%s", full, slim)
	}
	out, err := exec.Command(swapperbin.ProxyPath(t), "webhook").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown command "webhook"`) {
		t.Errorf("k8s-image-swapper-proxy webhook: %v\n%s", err, out)
	}
}
