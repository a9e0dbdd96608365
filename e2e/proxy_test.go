//go:build e2e

package e2e

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/daemonset/hoststoml"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// TestProxyContainerd runs the node proxy as a process in front of a real
// containerd, with hosts.toml written by the daemonset package, a source
// and a target registry, and shows with ctr and crictl:
// (a) a cold pull goes through the proxy and the image then is in the target;
// (b) with the source down, the same tag and digest still pull, from the target;
// (c) with the proxy down, containerd pulls from the origin;
// (d) a target reference whose image was deleted from the target pulls
// (fallback) and is copied back;
// (e) ten concurrent pulls of a new image fetch each blob from the source once.
func TestProxyContainerd(t *testing.T) {
	node := startContainerd(t)
	parent := t
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	px := startProxyProcess(t, fmt.Sprintf(`logLevel: debug
target:
  type: generic
  generic:
    registry: %q
    insecure: true
proxy:
  registries: [%q]
  tagTTL: 1s
`, tgt.Addr, src.Addr))
	_, err := hoststoml.Apply(ctx, hoststoml.Options{
		CertsDir: node.HostsDir, ProxyURL: "http://" + px.Addr, ContainerdConfig: node.Config,
		Hosts:     []hoststoml.Host{{Name: src.Addr}, {Name: tgt.Addr}},
		PlainHTTP: map[string]bool{src.Addr: true, tgt.Addr: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	platform := "linux/" + runtime.GOARCH
	imgA := images.Image(t, 256<<10, 2, platform)
	wantA := images.Push(t, src.Addr+"/e2e/a:v1", imgA)
	refA := src.Addr + "/e2e/a:v1"
	mirrorA := strings.Replace(src.Addr, ":", "_", 1) + "/e2e/a"
	served := func(from string) float64 {
		return px.metric(t, "k8s_image_swapper_proxy_requests_total", map[string]string{"served_from": from})
	}

	t.Run("a cold pull goes through the proxy and is copied", func(t *testing.T) {
		before, beforeAll := served("source"), served("source")+served("target")
		if err := node.Pull(ctx, "a", refA); err != nil {
			t.Fatal(err)
		}
		// The manifest comes from the source; a blob the copy (started by
		// the manifest request) has already put in the target comes from there.
		fromSrc, all := served("source")-before, served("source")+served("target")-beforeAll
		if fromSrc < 2 || all < 5 {
			t.Fatalf("the proxy served %v requests from the source and %v in all, want the whole image", fromSrc, all)
		}
		proxyWaitTarget(t, tgt.Addr+"/"+mirrorA+":v1", wantA)
	})

	t.Run("b source down: the same tag and digest pull from the target", func(t *testing.T) {
		src.Stop()
		time.Sleep(1100 * time.Millisecond) // past tagTTL: the proxy asks the source, and cannot
		before := served("target")
		if err := node.Pull(ctx, "b", refA); err != nil {
			t.Fatal(err)
		}
		if d, err := node.ImageDigest(ctx, "b", refA); err != nil || d != wantA.String() {
			t.Fatalf("pulled %s (%v), want %s", d, err, wantA)
		}
		if got := served("target") - before; got < 3 {
			t.Fatalf("the proxy served %v requests from the target", got)
		}
		src = registryproc.Start(parent, registryproc.Options{Dir: src.Dir, Addr: src.Addr})
	})

	t.Run("c proxy down: containerd pulls from the origin", func(t *testing.T) {
		px.Stop()
		src.ResetLog()
		if err := node.Pull(ctx, "c", refA); err != nil {
			t.Fatal(err)
		}
		if n := src.Count(http.MethodGet, "/v2/e2e/a/blobs/"); n < 3 {
			t.Fatalf("the origin served %d blobs", n)
		}
		px.Start(t)
	})

	t.Run("d pruned target reference falls back and is copied back", func(t *testing.T) {
		tref := tgt.Addr + "/" + mirrorA + ":v1"
		proxyWaitTarget(t, tref, wantA)
		proxyDelete(t, tgt.Addr, mirrorA, wantA, imgA)
		before := served("fallback")
		if err := node.Pull(ctx, "d", tref); err != nil {
			t.Fatal(err)
		}
		if d, err := node.ImageDigest(ctx, "d", tref); err != nil || d != wantA.String() {
			t.Fatalf("pulled %s (%v), want %s", d, err, wantA)
		}
		// At least the manifest comes through the fallback; the copy it
		// triggers may put the blobs back before containerd asks for them.
		if got := served("fallback") - before; got < 1 {
			t.Fatalf("the proxy served %v requests as fallback", got)
		}
		proxyWaitTarget(t, tref, wantA)
	})

	t.Run("e ten concurrent pulls fetch each blob from the source once", func(t *testing.T) {
		imgE := images.Image(t, 1<<20, 3, platform)
		refE := src.Addr + "/e2e/e:v1"
		wantE := images.Push(t, refE, imgE)
		src.ResetLog()
		var wg sync.WaitGroup
		errs := make([]error, 10)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = node.Pull(ctx, fmt.Sprintf("e%d", i), refE)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("pull %d: %v", i, err)
			}
		}
		proxyWaitTarget(t, tgt.Addr+"/"+strings.Replace(src.Addr, ":", "_", 1)+"/e2e/e:v1", wantE)
		m, err := imgE.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range append([]v1.Hash{m.Config.Digest}, layerDigests(m)...) {
			if n := src.Count(http.MethodGet, "/blobs/"+d.String()); n != 1 {
				t.Errorf("the source served %s %d times to 10 pulls and the copy, want 1", d, n)
			}
		}
		t.Logf("source requests for 10 pulls and the copy: manifest GETs %d, tag HEADs %d, blob GETs %d",
			src.Count(http.MethodGet, "/manifests/"), src.Count(http.MethodHead, "/manifests/v1"),
			src.Count(http.MethodGet, "/blobs/"))
	})

	t.Run("crictl pulls through the proxy (CRI, config_path)", func(t *testing.T) {
		imgC := images.Image(t, 256<<10, 2, platform)
		refC := src.Addr + "/e2e/c:v1"
		wantC := images.Push(t, refC, imgC)
		before, beforeAll := served("source"), served("source")+served("target")
		out, err := node.Crictl(t, ctx, "pull", refC)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := imgC.ConfigName(); err != nil || !strings.Contains(out, id.String()) {
			t.Errorf("crictl pulled another image: %s", out)
		}
		// The manifest comes from the source; blobs the copy has already
		// put in the target come from there.
		fromSrc, all := served("source")-before, served("source")+served("target")-beforeAll
		if fromSrc < 2 || all < 4 {
			t.Fatalf("the proxy served %v requests from the source and %v in all for crictl", fromSrc, all)
		}
		proxyWaitTarget(t, tgt.Addr+"/"+strings.Replace(src.Addr, ":", "_", 1)+"/e2e/c:v1", wantC)
		// The same through the target reference, as the webhook writes it.
		if _, err := node.Crictl(t, ctx, "pull", tgt.Addr+"/"+strings.Replace(src.Addr, ":", "_", 1)+"/e2e/c:v1"); err != nil {
			t.Fatal(err)
		}
	})
	if t.Failed() || os.Getenv("PROXY_E2E_LOG") != "" {
		t.Logf("proxy log:\n%s", px.Log())
	}
}

func layerDigests(m *v1.Manifest) []v1.Hash {
	var out []v1.Hash
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// proxyWaitTarget waits until the target registry itself has ref at want.
func proxyWaitTarget(t testing.TB, ref string, want v1.Hash) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := remote.Head(r)
		if err == nil && d.Digest == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the target never got %s at %s (last: %v)", ref, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// proxyDelete removes an image and its blobs from a registry, as a
// lifecycle policy would.
func proxyDelete(t *testing.T, host, repo string, d v1.Hash, img v1.Image) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"manifests/" + d.String(), "blobs/" + m.Config.Digest.String()}
	for _, l := range layerDigests(m) {
		paths = append(paths, "blobs/"+l.String())
	}
	for _, p := range paths {
		req, _ := http.NewRequest(http.MethodDelete, "http://"+host+"/v2/"+repo+"/"+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delete %s: %s", p, resp.Status)
		}
	}
}

// proxyProcess is the built binary running `proxy` with a config file.
type proxyProcess struct {
	Addr        string
	MetricsAddr string // set when started with --metrics-address
	config      string
	command     string   // the sub-command; "" is proxy
	extra       []string // more arguments
	cmd         *exec.Cmd
	syncLog
}

// startProxyProcess writes cfg (plus the listen address) and runs the proxy
// with extra arguments.
func startProxyProcess(t *testing.T, cfg string, extra ...string) *proxyProcess {
	t.Helper()
	p := &proxyProcess{Addr: registryproc.FreeAddr(t), config: filepath.Join(t.TempDir(), "config.yml"), extra: extra}
	if err := os.WriteFile(p.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Start(t)
	t.Cleanup(p.Stop)
	return p
}

// Start runs the process (again) and waits until it answers.
func (p *proxyProcess) Start(t *testing.T) {
	t.Helper()
	bin := swapperbin.ProxyPath(t) // the node proxy binary, as the chart runs it
	if p.command != "" && p.command != "proxy" {
		bin = swapperbin.Path(t)
	}
	p.cmd = exec.Command(bin, append([]string{cmp.Or(p.command, "proxy"), "--config", p.config, "--listen-address", p.Addr,
		"--spool-dir", filepath.Join(filepath.Dir(p.config), "spool")}, p.extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.Addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not start:\n%s", p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the process.
func (p *proxyProcess) Stop() {
	if p.cmd == nil || p.cmd.Process == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// Log is everything the proxy printed.
func (p *proxyProcess) Log() string {
	return p.String()
}

// metric sums the samples of a metric whose labels include want.
func (p *proxyProcess) metric(t testing.TB, metric string, want map[string]string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, metric+" "); ok && len(want) == 0 {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				sum += f
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, metric+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		match := true
		for k, v := range want {
			if !strings.Contains(","+labels+",", ","+k+"=\""+v+"\",") {
				match = false
			}
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && match {
			sum += f
		}
	}
	return sum
}
