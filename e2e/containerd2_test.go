//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/daemonset/containerdcfg"
	"github.com/k8s-image-swapper/k8s-image-swapper/daemonset/hoststoml"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// defaultCertsDir is the first folder of containerd 2.x's default config_path.
const defaultCertsDir = "/etc/containerd/certs.d"

// v2DiscardRuntimes is the CRI part of a version 2 config as EKS AL2 nodes had it.
const v2DiscardRuntimes = `  [plugins."io.containerd.grpc.v1.cri".containerd]
    discard_unpacked_layers = true
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"`

// containerd2Case is one containerd 2.x configuration and what it was seen to do.
type containerd2Case struct {
	name string
	opts containerdOptions
	// certsDir is where the hosts.toml files go: the folder a node would be told
	// to use. "" means the node's HostsDir.
	certsDir string
	// viaProxy: a CRI pull (crictl) of a source image goes through the proxy.
	// false: containerd pulls from the origin and ignores hosts.toml.
	viaProxy bool
}

// TestContainerd2HostsToml runs containerd v2.4.2 with its default config and
// with variations, the node proxy and a source registry, and records which
// configurations make containerd 2.x honour hosts.toml for CRI pulls (crictl,
// which goes through the transfer service unless local pull is on) and for
// `ctr images pull --hosts-dir`. For every configuration it also runs
// `k8s-image-swapper containerd-config --check` on the node's config.toml and
// asserts that the check accepts exactly the configurations whose CRI pulls
// really went through the proxy.
func TestContainerd2HostsToml(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	px := startProxyProcess(t, fmt.Sprintf(`logLevel: info
target:
  type: generic
  generic: {registry: %q, insecure: true}
proxy:
  registries: [%q]
`, tgt.Addr, src.Addr))
	bin := swapperbin.Path(t)
	// A list as containerd 2.x's default is, of the node's own folders.
	const list = "{hosts}:{dir}/docker-certs.d"

	cases := []containerd2Case{{
		name: "default config: config_path unset, transfer service",
		opts: containerdOptions{V2: true, ConfigPath: noConfigPath}, certsDir: defaultCertsDir,
		viaProxy: false, // containerd/containerd#12415: the default list is read as one folder
	}, {
		name: "default config with use_local_image_pull",
		opts: containerdOptions{V2: true, ConfigPath: noConfigPath, CRIImages: "  use_local_image_pull = true"}, certsDir: defaultCertsDir,
		viaProxy: true,
	}, {
		name:     "config_path a single folder, transfer service",
		opts:     containerdOptions{V2: true},
		viaProxy: true,
	}, {
		name:     "config_path a list, transfer service",
		opts:     containerdOptions{V2: true, ConfigPath: list},
		viaProxy: false,
	}, {
		name:     "config_path a list with use_local_image_pull",
		opts:     containerdOptions{V2: true, ConfigPath: list, CRIImages: "  use_local_image_pull = true"},
		viaProxy: true,
	}, {
		name:     "config_path a list with discard_unpacked_layers (EKS AL2023)",
		opts:     containerdOptions{V2: true, ConfigPath: list, CRIImages: "  discard_unpacked_layers = true"},
		viaProxy: true, // a setting the transfer service lacks turns local pull on
	}, {
		name:     "config_path a list with max_concurrent_downloads",
		opts:     containerdOptions{V2: true, ConfigPath: list, CRIImages: "  max_concurrent_downloads = 5"},
		viaProxy: true,
	}, {
		name:     "version 2 config (upgraded node), single folder",
		opts:     containerdOptions{V2: true, LegacyConfig: true},
		viaProxy: true,
	}, {
		name:     "version 2 config (upgraded node), a list",
		opts:     containerdOptions{V2: true, LegacyConfig: true, ConfigPath: list},
		viaProxy: false, // migrated to the 2.x table: the transfer service again
	}, {
		name:     "version 2 config (upgraded node), a list with discard_unpacked_layers and runtimes (EKS AL2)",
		opts:     containerdOptions{V2: true, LegacyConfig: true, ConfigPath: list, CRIImages: v2DiscardRuntimes},
		viaProxy: true, // migrated too, and it turns local pull on
	}, {
		name: "version 2 config (upgraded node), a list with discard_unpacked_layers, no runtimes",
		opts: containerdOptions{V2: true, LegacyConfig: true, ConfigPath: list,
			CRIImages: "  [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n    discard_unpacked_layers = true"},
		viaProxy: false, // containerd's migration copies these only when runtimes are there
	}, {
		name:     "containerd 1.6, config_path a list",
		opts:     containerdOptions{ConfigPath: list},
		viaProxy: true,
	}, {
		name:     "containerd 1.6, config_path unset",
		opts:     containerdOptions{ConfigPath: noConfigPath},
		viaProxy: false,
	}}
	platform := "linux/" + runtime.GOARCH
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			node := startContainerdWith(t, c.opts)
			version := node.RuntimeVersion(t, ctx)
			if major, err := containerdcfg.ParseMajor(version); err != nil || (major == 2) != c.opts.V2 {
				t.Fatalf("containerd %s (%v), want 2.x: %v", version, err, c.opts.V2)
			}
			certs := c.certsDir
			if certs == "" {
				certs = node.HostsDir
			}
			writeHostsToml(ctx, t, certs, px.Addr, src.Addr)

			ref := fmt.Sprintf("%s/e2e/c2-%d:v1", src.Addr, i)
			img := images.Image(t, 64<<10, 2, platform)
			images.Push(t, ref, img)
			src.ResetLog()
			before := px.requests(t)
			out, err := node.Crictl(t, ctx, "pull", ref)
			if err != nil {
				t.Fatal(err)
			}
			if id, err := img.ConfigName(); err != nil || !strings.Contains(out, id.String()) {
				t.Fatalf("crictl pulled another image: %s", out)
			}
			viaProxy := px.requests(t) > before
			direct := src.Count(http.MethodGet, fmt.Sprintf("/v2/e2e/c2-%d/manifests/", i)) > 0
			if viaProxy != c.viaProxy {
				t.Errorf("CRI pull through the proxy: %v, want %v (config:\n%s)", viaProxy, c.viaProxy, readFile(t, node.Config))
			}
			if !viaProxy && !direct {
				t.Errorf("the pull went neither through the proxy nor to the origin")
			}

			// The version as the Node reports it, so a version 2 file is judged right.
			checkOut, checkErr := exec.CommandContext(ctx, bin, "containerd-config", "--check", "--containerd-version", version,
				"--containerd-config", node.Config, "--certs-dir", certs).CombinedOutput()
			t.Logf("containerd-config --check --containerd-version %s (exit %v):\n%s", version, checkErr, checkOut)
			if accepted := checkErr == nil; accepted != viaProxy {
				t.Errorf("the check accepted: %v, but CRI pulls went through the proxy: %v", accepted, viaProxy)
			}
		})
	}

	t.Run("ctr images pull --hosts-dir goes through the proxy (transfer service, one folder)", func(t *testing.T) {
		node := startContainerdWith(t, containerdOptions{V2: true, ConfigPath: noConfigPath})
		writeHostsToml(ctx, t, node.HostsDir, px.Addr, src.Addr)
		ref := src.Addr + "/e2e/c2-ctr:v1"
		want := images.Push(t, ref, images.Image(t, 64<<10, 2, platform))
		before := px.requests(t)
		if err := node.Pull(ctx, "ctr", ref); err != nil {
			t.Fatal(err)
		}
		if d, err := node.ImageDigest(ctx, "ctr", ref); err != nil || d != want.String() {
			t.Fatalf("pulled %s (%v), want %s", d, err, want)
		}
		if px.requests(t) <= before {
			t.Errorf("ctr --hosts-dir did not go through the proxy")
		}
	})
}

// writeHostsToml points containerd at the proxy for host, in certsDir, and
// undoes it when the test ends (certsDir may be the machine's own folder).
func writeHostsToml(ctx context.Context, t *testing.T, certsDir, proxyAddr, host string) {
	t.Helper()
	o := hoststoml.Options{
		CertsDir: certsDir, ProxyURL: "http://" + proxyAddr,
		Hosts: []hoststoml.Host{{Name: host}}, PlainHTTP: map[string]bool{host: true},
	}
	if _, err := hoststoml.Apply(ctx, o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := hoststoml.Cleanup(context.Background(), o); err != nil {
			t.Errorf("cleanup %s: %v", certsDir, err)
		}
	})
}

// requests is how many requests the proxy has served, from wherever.
func (p *proxyProcess) requests(t *testing.T) float64 {
	t.Helper()
	return p.metric(t, "k8s_image_swapper_proxy_requests_total", nil)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
