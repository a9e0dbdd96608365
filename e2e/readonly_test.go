//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/k8s-image-swapper/k8s-image-swapper/daemonset/hoststoml"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// TestProxyReadOnly replays the poisoning attack of issue 17 on the built
// binary, with the config a user writes, for the embedded local store and
// a generic target: containerd pulls an image through the proxy (which
// copies it), the source goes away, and an anonymous client pushes another
// image under the mirror's name and tries to delete the mirror. Every write
// is refused with 405, and a fresh pull by containerd gets the true image.
func TestProxyReadOnly(t *testing.T) {
	node := startContainerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	platform := "linux/" + runtime.GOARCH
	for _, kind := range []string{"local", "generic"} {
		t.Run(kind, func(t *testing.T) {
			src := registryproc.Start(t, registryproc.Options{})
			var tgt *registryproc.Registry
			cfg := fmt.Sprintf("target:\n  local:\n    path: %q\n", filepath.Join(t.TempDir(), "store"))
			if kind == "generic" {
				tgt = registryproc.Start(t, registryproc.Options{})
				cfg = fmt.Sprintf("target:\n  generic:\n    registry: %q\n    insecure: true\n", tgt.Addr)
			}
			px := startProxyProcess(t, cfg+fmt.Sprintf("proxy:\n  registries: [%q]\n  tagTTL: 1s\n", src.Addr))
			hosts := []hoststoml.Host{{Name: src.Addr}}
			if _, err := hoststoml.Apply(ctx, hoststoml.Options{CertsDir: node.HostsDir, ProxyURL: "http://" + px.Addr,
				ContainerdConfig: node.Config, Hosts: hosts, PlainHTTP: map[string]bool{src.Addr: true}}); err != nil {
				t.Fatal(err)
			}
			ref := src.Addr + "/e2e/app:v1"
			want := images.Push(t, ref, images.Image(t, 64<<10, 2, platform))
			if err := node.Pull(ctx, kind+"-first", ref); err != nil {
				t.Fatal(err)
			}
			mirror := strings.Replace(src.Addr, ":", "_", 1) + "/e2e/app"
			storeHost := px.Addr
			if tgt != nil {
				storeHost = tgt.Addr
			}
			proxyWaitTarget(t, storeHost+"/"+mirror+":v1", want)
			src.Stop()
			time.Sleep(1100 * time.Millisecond) // past tagTTL: the proxy asks the source, and cannot

			evil := images.Image(t, 64<<10, 1, platform)
			for _, repo := range []string{mirror, "e2e/app"} {
				r, err := name.ParseReference(px.Addr+"/"+repo+":v1", name.Insecure)
				if err != nil {
					t.Fatal(err)
				}
				var te *transport.Error
				if err := remote.Write(r, evil); !errors.As(err, &te) || te.StatusCode != http.StatusMethodNotAllowed {
					t.Fatalf("anonymous push to %s: %v, want 405", r, err)
				}
			}
			for _, path := range []string{"/v2/" + mirror + "/manifests/" + want.String(), "/v2/e2e/app/manifests/v1?ns=" + src.Addr} {
				for _, method := range []string{http.MethodDelete, http.MethodPut} {
					req, _ := http.NewRequest(method, "http://"+px.Addr+path, strings.NewReader("{}"))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"code":"UNSUPPORTED"`) {
						t.Fatalf("%s %s: %s %s, want 405 with the spec's error body", method, path, resp.Status, body)
					}
				}
			}
			if err := node.Pull(ctx, kind+"-after", ref); err != nil {
				t.Fatalf("pull after the attack: %v\n%s", err, px.Log())
			}
			if d, err := node.ImageDigest(ctx, kind+"-after", ref); err != nil || d != want.String() {
				t.Fatalf("pulled %s (%v) after the attack, want the true %s", d, err, want)
			}
			if n := px.metric(t, "k8s_image_swapper_proxy_writes_total", map[string]string{"result": "read_only"}); n < 6 {
				t.Fatalf("proxy counted %v refused writes", n)
			}
		})
	}
}
