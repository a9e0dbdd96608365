//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/mirrorpull"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// startHubProcess runs `hub` with cfg on addr (a free one when "").
func startHubProcess(t *testing.T, cfg, addr string, extra ...string) *proxyProcess {
	t.Helper()
	if addr == "" {
		addr = registryproc.FreeAddr(t)
	}
	p := &proxyProcess{Addr: addr, command: "hub", config: writeConfigFile(t, cfg), extra: extra}
	p.Start(t)
	t.Cleanup(p.Stop)
	return p
}

func writeConfigFile(t *testing.T, cfg string) string {
	t.Helper()
	path := t.TempDir() + "/config.yml"
	writeKubeFile(t, path, []byte(cfg))
	return path
}

// hubConfig is a config for a hub or node proxies in front of src, copying into tgt.
func hubConfig(src, tgt, hubURL string) string {
	cfg := fmt.Sprintf("target:\n  type: generic\n  generic: {registry: %q, insecure: true}\nproxy:\n  registries: [%q]\n", tgt, src)
	if hubURL != "" {
		cfg += fmt.Sprintf("hub:\n  url: %q\n  timeout: 2s\n", hubURL)
	}
	return cfg
}

// pullAllAtOnce has every node proxy pull repo:tag at the same moment.
func pullAllAtOnce(ctx context.Context, t *testing.T, nodes []*proxyProcess, ns, repo, tag string) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = mirrorpull.Pull(ctx, n.Addr, ns, repo, tag)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v\n%s", i, err, nodes[i].Log())
		}
	}
}

// blobGETs counts the origin's GETs of each blob of img in repo.
func blobGETs(t *testing.T, src *registryproc.Registry, repo string, img v1.Image) map[string]int {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, b := range append([]v1.Hash{m.Config.Digest}, layerDigests(m)...) {
		out[b.String()[:19]] = src.Count(http.MethodGet, "/v2/"+repo+"/blobs/"+b.String())
	}
	return out
}

func eachIs(counts map[string]int, want int) bool {
	for _, n := range counts {
		if n != want {
			return false
		}
	}
	return len(counts) > 0
}

// With a hub, N node proxies cold-pulling one image at the same moment cost
// the origin one GET per blob, and the target one manifest PUT, for every N;
// so do three hub replicas that split repositories between them.
func TestHubOneFetchPerBlob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	platform := "linux/" + runtime.GOARCH
	for _, replicas := range []int{1, 3} {
		src := registryproc.Start(t, registryproc.Options{})
		tgt := registryproc.Start(t, registryproc.Options{})
		addrs := make([]string, replicas)
		for i := range addrs {
			addrs[i] = registryproc.FreeAddr(t)
		}
		hubs := make([]*proxyProcess, replicas)
		for i, a := range addrs {
			var extra []string
			if replicas > 1 {
				extra = []string{"--peers", strings.Join(addrs, ","), "--self", a}
			}
			hubs[i] = startHubProcess(t, hubConfig(src.Addr, tgt.Addr, ""), a, extra...)
		}
		var nodes []*proxyProcess
		for _, n := range []int{1, 4, 8, 16} {
			for len(nodes) < n {
				// Node proxies reach the replicas in turn, as through their Service.
				nodes = append(nodes, startProxyProcess(t, hubConfig(src.Addr, tgt.Addr, "http://"+addrs[len(nodes)%replicas])))
			}
			t.Run(fmt.Sprintf("%d replicas, %d nodes", replicas, n), func(t *testing.T) {
				repo := fmt.Sprintf("e2e/hub%dx%d", replicas, n)
				img := images.Image(t, 512<<10, 3, platform)
				want := images.Push(t, src.Addr+"/"+repo+":v1", img)
				before := make([]float64, replicas)
				for i, h := range hubs {
					before[i] = h.metric(t, "k8s_image_swapper_proxy_source_fetches_total", map[string]string{"kind": "blob"})
				}
				src.ResetLog()
				pullAllAtOnce(ctx, t, nodes, src.Addr, repo, "v1")
				if got := blobGETs(t, src, repo, img); !eachIs(got, 1) {
					t.Errorf("origin GETs per blob %v, want 1 each", got)
				}
				mirror := mirrorRepo(src.Addr, repo)
				proxyWaitTarget(t, tgt.Addr+"/"+mirror+":v1", want)
				if n := tgt.Count(http.MethodPut, "/v2/"+mirror+"/manifests/"); n != 1 {
					t.Errorf("%d manifest PUTs into the target, want 1", n)
				}
				owners := 0
				for i, h := range hubs {
					if h.metric(t, "k8s_image_swapper_proxy_source_fetches_total", map[string]string{"kind": "blob"}) > before[i] {
						owners++
					}
				}
				if owners != 1 {
					t.Errorf("%d hub replicas fetched the image's blobs from the origin, want its owner alone", owners)
				}
			})
		}
	}
}

// A hub that dies in the middle of a pull, or hangs before it, costs no node
// proxy its pull: a transfer that broke off is picked up from the source, a
// hub that does not answer is passed over after hub.timeout.
func TestHubFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	platform := "linux/" + runtime.GOARCH
	origin := registryproc.Start(t, registryproc.Options{})
	slow := startFaultRelay(t, origin.Addr, "") // a remote origin: blobs at 8 MiB/s
	slow.rate.Store(8 << 20)
	tgt := registryproc.Start(t, registryproc.Options{})
	h := startHubProcess(t, hubConfig(slow.Addr, tgt.Addr, ""), "")
	var nodes []*proxyProcess
	for range 4 {
		nodes = append(nodes, startProxyProcess(t, hubConfig(slow.Addr, tgt.Addr, "http://"+h.Addr)))
	}

	t.Run("hub killed mid-pull", func(t *testing.T) {
		repo := "e2e/killed"
		images.Push(t, origin.Addr+"/"+repo+":v1", images.Image(t, 8<<20, 3, platform))
		var killed atomic.Int64 // bytes the origin had sent when the hub was killed
		go func() {
			// Once the hub is well into the blobs, kill it.
			for slow.blobSent.Load() < 6<<20 && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
			killed.Store(slow.blobSent.Load())
			_ = h.cmd.Process.Kill()
		}()
		pullAllAtOnce(ctx, t, nodes, slow.Addr, repo, "v1")
		at := killed.Load()
		if at == 0 || at >= 3*8<<20 {
			t.Fatalf("the hub was not killed in the middle of the pulls (origin had sent %d bytes)", at)
		}
		_ = h.cmd.Wait()
		resumed := 0
		for _, r := range slow.Requests() {
			if r.Method == http.MethodGet && strings.HasPrefix(r.Range, "bytes=") && !strings.HasPrefix(r.Range, "bytes=0-") {
				resumed++
			}
		}
		if resumed == 0 {
			t.Errorf("no node proxy picked a broken transfer up from the origin (no Range GET)")
		}
		h.Start(t)
	})

	t.Run("hub hung before the pulls", func(t *testing.T) {
		// Fresh node proxies: the others' breakers still skip the hub they saw die.
		var fresh []*proxyProcess
		for range 4 {
			fresh = append(fresh, startProxyProcess(t, hubConfig(slow.Addr, tgt.Addr, "http://"+h.Addr)))
		}
		repo := "e2e/hung"
		images.Push(t, origin.Addr+"/"+repo+":v1", images.Image(t, 256<<10, 3, platform))
		if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = h.cmd.Process.Signal(syscall.SIGCONT) }()
		pullAllAtOnce(ctx, t, fresh, slow.Addr, repo, "v1")
		for i, n := range fresh {
			if got := n.metric(t, "k8s_image_swapper_relay_requests_total", map[string]string{"relay": "hub", "result": "fallback"}); got < 1 {
				t.Errorf("node %d fell back to the source %v times, want at least once", i, got)
			}
		}
	})
}

// With hub.url the webhooks check and copy through the hub: one image
// admitted on many pods at once, through two webhook replicas that ask two
// hub replicas, is one copy (one manifest PUT, one origin GET per blob): the
// hub replica that does not own the repository passes the question on.
// With the hubs down the webhooks check and copy themselves.
func TestHubWebhook(t *testing.T) {
	platform := "linux/" + runtime.GOARCH
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	addrs := []string{registryproc.FreeAddr(t), registryproc.FreeAddr(t)}
	var hubs []*proxyProcess
	for _, a := range addrs {
		hubs = append(hubs, startHubProcess(t, hubConfig(src.Addr, tgt.Addr, ""), a, "--peers", strings.Join(addrs, ","), "--self", a))
	}
	bin := swapperbin.Path(t)
	certs := newServingTLS(t)
	cfg := func(hubAddr string) string {
		return fmt.Sprintf("imageSwapPolicy: exists\nimageCopyPolicy: immediate\nimageCopyDeadline: 20s\nsource:\n  registries:\n    - {type: generic, generic: {registry: %q, insecure: true}}\n", src.Addr) +
			hubConfig(src.Addr, tgt.Addr, "http://"+hubAddr)
	}
	hooks := []*chartWebhook{startChartWebhook(t, bin, certs, "a", cfg(addrs[0])), startChartWebhook(t, bin, certs, "b", cfg(addrs[1]))}

	img := images.Image(t, 512<<10, 3, platform)
	images.Push(t, src.Addr+"/e2e/admitted:v1", img)
	src.ResetLog()
	want := tgt.Addr + "/" + mirrorRepo(src.Addr, "e2e/admitted") + ":v1"
	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = hooks[i%2].admit(t, "apps", src.Addr+"/e2e/admitted:v1", nil) }()
	}
	wg.Wait()
	for i, g := range got {
		if g != want {
			t.Errorf("admission %d: patched to %q, want %q", i, g, want)
		}
	}
	if gets := blobGETs(t, src, "e2e/admitted", img); !eachIs(gets, 1) {
		t.Errorf("origin GETs per blob %v, want 1 each", gets)
	}
	if n := tgt.Count(http.MethodPut, "/v2/"+mirrorRepo(src.Addr, "e2e/admitted")+"/manifests/"); n != 1 {
		t.Errorf("%d manifest PUTs into the target, want 1", n)
	}
	forwards := 0.0
	for _, h := range hubs {
		forwards += h.metric(t, "k8s_image_swapper_hub_forwards_total", nil)
	}
	if forwards < 1 {
		t.Errorf("no hub replica passed a question to the owner")
	}

	// The hubs gone: each webhook copies itself, and swaps.
	for _, h := range hubs {
		h.Stop()
	}
	images.Push(t, src.Addr+"/e2e/alone:v1", images.Image(t, 64<<10, 1, platform))
	if g := hooks[0].admit(t, "apps", src.Addr+"/e2e/alone:v1", nil); g != tgt.Addr+"/"+mirrorRepo(src.Addr, "e2e/alone")+":v1" {
		t.Errorf("with the hub down: patched to %q, want the target", g)
	}
}

// The hub is as read-only as the node proxy (issue 17's attack, replayed on
// it): with the image mirrored and the source gone, an anonymous push under
// the mirror's name and a delete are refused with 405, and the next pull gets
// the true image.
func TestHubReadOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	platform := "linux/" + runtime.GOARCH
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	h := startHubProcess(t, hubConfig(src.Addr, tgt.Addr, ""), "")
	img := images.Image(t, 64<<10, 2, platform)
	want := images.Push(t, src.Addr+"/e2e/app:v1", img)
	if err := mirrorpull.Pull(ctx, h.Addr, src.Addr, "e2e/app", "v1"); err != nil {
		t.Fatal(err)
	}
	mirror := mirrorRepo(src.Addr, "e2e/app")
	proxyWaitTarget(t, tgt.Addr+"/"+mirror+":v1", want)
	src.Stop()
	for _, c := range []struct{ method, path string }{
		{http.MethodPut, "/v2/" + mirror + "/manifests/v1"},
		{http.MethodPut, "/v2/e2e/app/manifests/v1?ns=" + src.Addr},
		{http.MethodPost, "/v2/" + mirror + "/blobs/uploads/"},
		{http.MethodDelete, "/v2/" + mirror + "/manifests/" + want.String()},
	} {
		req, _ := http.NewRequest(c.method, "http://"+h.Addr+c.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s on the hub: %s, want 405", c.method, c.path, resp.Status)
		}
	}
	req, _ := http.NewRequest(http.MethodHead, "http://"+h.Addr+"/v2/e2e/app/manifests/v1?ns="+src.Addr, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != want.String() {
		t.Errorf("after the attack the hub answers %s %q, want the true %s", resp.Status, resp.Header.Get("Docker-Content-Digest"), want)
	}
}
