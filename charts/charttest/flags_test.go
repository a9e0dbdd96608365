package charttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	swapperbin.Remove()
	os.Exit(code)
}

var (
	flagsMu    sync.Mutex
	flagsCache = map[string][]string{}
	flagName   = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9-]*)`)
)

// binaryFlags lists the flags `BINARY SUB --help` documents (its own and
// global), BINARY being the image's binary command names.
func binaryFlags(t testing.TB, command []string, sub string) []string {
	t.Helper()
	key := strings.Join(command, " ") + " " + sub
	flagsMu.Lock()
	defer flagsMu.Unlock()
	if f, ok := flagsCache[key]; ok {
		return f
	}
	bin, ok := swapperbin.ForCommand(t, command)
	if !ok {
		t.Fatalf("command %v is not a binary of the image", command)
	}
	out, err := exec.Command(bin, sub, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("k8s-image-swapper %s --help: %v\n%s", sub, err, out)
	}
	var flags []string
	for _, m := range flagName.FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("k8s-image-swapper %s --help lists no flags:\n%s", sub, out)
	}
	flagsCache[key] = flags
	return flags
}

// The chart's containers that run the k8s-image-swapper binary, whatever image.repository says.
var binaryContainers = map[string]bool{"webhook": true, "proxy": true, "hub": true, "containerd-config": true, "containerd-cleanup": true}

// checkFlags: every flag the chart passes the binary is one the binary has.
func checkFlags(t *testing.T, objs []object) {
	t.Helper()
	for _, o := range objs {
		spec := podSpec(o)
		if spec == nil {
			continue
		}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			if !binaryContainers[c.Name] {
				continue
			}
			if _, ok := swapperbin.ForCommand(t, c.Command); !ok || len(c.Args) == 0 {
				t.Errorf("%s container %s: want a binary of the image (or its entrypoint) and args, the sub-command first: %v %v", o, c.Name, c.Command, c.Args)
				continue
			}
			known := binaryFlags(t, c.Command, c.Args[0])
			for _, a := range c.Args[1:] {
				if !strings.HasPrefix(a, "--") {
					t.Errorf("%s container %s: argument %q is not a flag", o, c.Name, a)
					continue
				}
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if !slices.Contains(known, name) {
					t.Errorf("%s container %s: k8s-image-swapper %s has no flag --%s", o, c.Name, c.Args[0], name)
				}
			}
		}
	}
}

func TestFlagsExist(t *testing.T) {
	helmBin(t)
	for _, f := range append([]string{""}, ciValues(t)...) {
		var args []string
		name := "defaults"
		if f != "" {
			args, name = []string{"-f", f}, filepath.Base(f)
		}
		t.Run(name, func(t *testing.T) { checkFlags(t, render(t, args...)) })
	}
	t.Run("hub.enabled", func(t *testing.T) {
		checkFlags(t, render(t, "--set", "hub.enabled=true"))
		checkFlags(t, render(t, "--set", "hub.enabled=true", "--set", "hub.replicaCount=2", "--set", "config.target.type=generic",
			"--set", "config.target.generic.registry=registry.example"))
	})
	t.Run("proxy.metrics.enabled", func(t *testing.T) {
		objs := render(t, "--set", "proxy.metrics.enabled=true", "--set", "podMonitor.enabled=true")
		checkFlags(t, objs)
		if !slices.Contains(binaryFlags(t, []string{"/usr/local/bin/k8s-image-swapper-proxy"}, "proxy"), "metrics-address") {
			t.Error("k8s-image-swapper proxy has no --metrics-address")
		}
		// The PodMonitor scrapes the port the metrics listener serves on.
		pm := find(t, objs, "PodMonitor", "-proxy")
		peps, _, _ := unstructured.NestedSlice(pm.U.Object, "spec", "podMetricsEndpoints")
		if len(peps) != 1 || peps[0].(map[string]any)["port"] != "metrics" {
			t.Errorf("PodMonitor endpoints %v, want port metrics", peps)
		}
		spec := podSpec(find(t, objs, "DaemonSet", "-proxy"))
		for _, c := range spec.Containers {
			if c.Name != "proxy" {
				continue
			}
			var port int32
			for _, p := range c.Ports {
				if p.Name == "metrics" {
					port = p.ContainerPort
				}
			}
			if want := fmt.Sprintf("--metrics-address=:%d", port); port == 0 || !slices.Contains(c.Args, want) {
				t.Errorf("proxy container: metrics port %d, args %v: want %s", port, c.Args, want)
			}
		}
	})
}
