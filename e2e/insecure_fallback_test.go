//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// TestInsecureOriginFallback: a source and a target the config says are
// plain HTTP (generic, insecure: true), and hosts.toml written by the
// binary's containerd-config from that config alone, with no --plain-http.
// With the proxy stopped, containerd (1.6 and 2.x, through ctr and CRI)
// falls back to the origins and pulls from them.
func TestInsecureOriginFallback(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("containerd2=%t", v2), func(t *testing.T) {
			node := startContainerdWith(t, containerdOptions{V2: v2})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			src := registryproc.Start(t, registryproc.Options{})
			tgt := registryproc.Start(t, registryproc.Options{})
			platform := "linux/" + runtime.GOARCH
			img := images.Image(t, 64<<10, 1, platform)
			source := src.Addr + "/e2e/app:v1"
			images.Push(t, source, img)
			mirrored := tgt.Addr + "/" + strings.Replace(src.Addr, ":", "_", 1) + "/e2e/app:v1"
			images.Push(t, mirrored, img)
			cfg := fmt.Sprintf(`logLevel: debug
source:
  registries:
    - type: generic
      generic: {registry: %q, insecure: true}
target:
  type: generic
  generic: {registry: %q, insecure: true}
proxy:
  registries: [docker.io]
`, src.Addr, tgt.Addr)
			px := startProxyProcess(t, cfg)
			out, err := exec.CommandContext(ctx, swapperbin.Path(t), "containerd-config", "--config", px.config,
				"--certs-dir", node.HostsDir, "--proxy-url", "http://"+px.Addr, "--containerd-config", node.Config).CombinedOutput()
			if err != nil {
				t.Fatalf("containerd-config: %v\n%s", err, out)
			}
			if hosts := readFile(t, node.HostsDir+"/"+src.Addr+"/hosts.toml"); !strings.Contains(hosts, `server = "http://`+src.Addr+`"`) {
				t.Fatalf("hosts.toml of the source:\n%s", hosts)
			}

			// Through the proxy while it runs.
			if err := node.Pull(ctx, "up", source); err != nil {
				t.Fatal(err)
			}
			px.Stop()

			// Proxy stopped: from the origins, over plain HTTP.
			src.ResetLog()
			if err := node.Pull(ctx, "down", source); err != nil {
				t.Fatalf("source pull with the proxy stopped: %v\n%s", err, node.Log())
			}
			if n := src.Count(http.MethodGet, "/v2/e2e/app/blobs/"); n < 2 {
				t.Errorf("the source origin served %d blobs, want the image's", n)
			}
			tgt.ResetLog()
			if err := node.Pull(ctx, "down-target", mirrored); err != nil {
				t.Fatalf("target pull with the proxy stopped: %v\n%s", err, node.Log())
			}
			if n := tgt.Count(http.MethodGet, "/blobs/"); n < 2 {
				t.Errorf("the target origin served %d blobs, want the image's", n)
			}
			// The kubelet's way: CRI, config_path.
			if _, err := node.Crictl(t, ctx, "pull", source); err != nil {
				t.Fatalf("crictl pull with the proxy stopped: %v", err)
			}
		})
	}
}
