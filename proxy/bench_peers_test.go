package proxy

// BenchmarkPeers: the proxy on its embedded store against distribution's
// pull-through cache (docker-registry with proxy.remoteurl, its own
// filesystem storage: the same shape), each measured against a pull
// straight from the origin, in the same run:
//
//	go test -run '^$' -bench '^BenchmarkPeers$' -benchtime 1x -count 5 ./proxy/

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/linkrelay"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// The remote origin: a 50 MB/s link with 20 ms added to each round trip.
const (
	remoteRate  = 50_000_000
	remoteDelay = 10 * time.Millisecond // each way
)

// BenchmarkPeers runs, per origin (loopback, or behind the remote link)
// and client (containerd's way: HEAD the tag, the manifest by digest, blobs
// 3 at a time; crane's: go-containerregistry's remote, 4 at a time), for a
// new image each run: a cold pull, warm pulls, 10 cold pulls at once (of a
// second new image) and 10 warm ones, each straight from the origin, then
// through distribution's proxy, then through ours; peak RSS of both proxies
// over their 10 pulls. Seconds per pull; ratios are the origin's time over
// the proxy's.
func BenchmarkPeers(b *testing.B) {
	for _, c := range []struct {
		origin, client string
	}{{"loopback", "containerd"}, {"loopback", "crane"}, {"remote", "containerd"}} {
		b.Run("origin="+c.origin+"/client="+c.client, func(b *testing.B) { benchPeers(b, c.origin == "remote", c.client == "crane") })
	}
}

func benchPeers(b *testing.B, remoteOrigin, crane bool) {
	ctx := context.Background()
	src := registryproc.Start(b, registryproc.Options{})
	origin := src.Addr
	layers, size := benchLayers, int64(benchLayerSize)
	if remoteOrigin {
		origin = linkrelay.Start(b, registryproc.FreeAddr(b), src.Addr, remoteRate, remoteDelay).Addr
		size = 16 << 20 // 64 MiB: 1.3 s a pull over the link, 13 s for 10
	}
	dist := registryproc.Start(b, registryproc.Options{ProxyRemote: "http://" + origin})
	ours := startLocalProxy(b, origin)
	pullOnce := func(ctx context.Context, base, ns, repo, tag string) error {
		_, err := pull(ctx, base, ns, repo, tag)
		return err
	}
	if crane {
		pullOnce = cranePull
	}
	type peer struct {
		name, base, ns string
		pid            int
	}
	peers := []peer{{"direct", "http://" + origin, "", 0}, {"dist", "http://" + dist.Addr, "", dist.Pid()},
		{"", "http://" + ours.addr, origin, ours.cmd.Process.Pid}}
	figures := map[string]float64{}
	add := func(phase string, p peer, d time.Duration) {
		key := phase + "-s"
		if p.name != "" {
			key = phase + "-" + p.name + "-s"
		}
		figures[key] += d.Seconds()
	}
	push := func(repo string) {
		img := blobImage(b, layers, size)
		ref, err := name.ParseReference(src.Addr+"/"+repo+":v1", name.Insecure)
		must(b, err)
		must(b, remote.Write(ref, img))
	}
	for i := range b.N {
		b.StopTimer()
		repo, repo10 := fmt.Sprintf("bench/peers%d", i), fmt.Sprintf("bench/peers%d-10", i)
		push(repo)
		push(repo10)
		for _, p := range peers {
			add("cold", p, timed(b, func() error { return pullOnce(ctx, p.base, p.ns, repo, "v1") }))
		}
		ours.waitCopied(b, origin, repo)
		for _, p := range peers { // warms connections and page caches
			timed(b, func() error { return pullOnce(ctx, p.base, p.ns, repo, "v1") })
		}
		for range warmRounds {
			for _, p := range peers {
				add("warm", p, timed(b, func() error { return pullOnce(ctx, p.base, p.ns, repo, "v1") })/warmRounds)
			}
		}
		for _, phase := range []struct{ name, repo string }{{"cold10", repo10}, {"warm10", repo}} {
			for _, p := range peers {
				var peak func() int64
				if p.pid != 0 {
					_ = resetPeakRSS(p.pid)
					peak = samplePeak(p.pid, "VmRSS")
				}
				add(phase.name, p, timed(b, func() error { return pullNWith(ctx, pullOnce, 10, p.base, p.ns, phase.repo) }))
				if peak != nil {
					key := phase.name + "-peak-RSS-MiB"
					if p.name != "" {
						key = phase.name + "-" + p.name + "-peak-RSS-MiB"
					}
					figures[key] = max(figures[key], float64(max(peak(), procStatus(p.pid, "VmHWM")))/1024)
				}
			}
		}
	}
	for k, v := range figures {
		if !strings.HasSuffix(k, "RSS-MiB") {
			v /= float64(b.N)
		}
		b.ReportMetric(v, k)
	}
}

// pullNWith runs n pulls of repo:v1 at once with pullOnce.
func pullNWith(ctx context.Context, pullOnce func(context.Context, string, string, string, string) error, n int, base, ns, repo string) error {
	var g errgroup.Group
	for range n {
		g.Go(func() error { return pullOnce(ctx, base, ns, repo, "v1") })
	}
	return g.Wait()
}

// cranePull pulls as crane does: go-containerregistry's remote (the
// manifest by tag, then config and layers, 4 at a time), every digest
// checked; ns is added to each request, as a containerd mirror would.
func cranePull(ctx context.Context, base, ns, repo, tag string) error {
	ref, err := name.ParseReference(strings.TrimPrefix(base, "http://")+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return err
	}
	var rt http.RoundTripper = http.DefaultTransport
	if ns != "" {
		rt = nsTransport{ns: ns, next: rt}
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(rt))
	if err != nil {
		return err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(4)
	for _, l := range ls {
		g.Go(func() error {
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc) // the digest is checked at EOF
			return err
		})
	}
	return g.Wait()
}

type nsTransport struct {
	ns   string
	next http.RoundTripper
}

func (t nsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/v2/") && r.URL.Path != "/v2/" {
		r = r.Clone(r.Context())
		q := r.URL.Query()
		q.Set("ns", t.ns)
		r.URL.RawQuery = q.Encode()
	}
	return t.next.RoundTrip(r)
}

// localProxy is the proxy process on its embedded store.
type localProxy struct {
	addr, data string
	cmd        *exec.Cmd
}

func startLocalProxy(b *testing.B, origin string) *localProxy {
	b.Helper()
	dir := b.TempDir()
	p := &localProxy{addr: registryproc.FreeAddr(b), data: filepath.Join(dir, "data")}
	cfg := fmt.Sprintf("logLevel: warn\ntarget:\n  type: local\nproxy:\n  registries: [%q]\n", origin)
	p.cmd = startBenchProxy(b, dir, cfg, p.addr, "local-proxy", "--data-dir", p.data)
	return p
}

// waitCopied waits until the store holds origin's repo:v1 (the copy
// writes the tag last).
func (p *localProxy) waitCopied(b *testing.B, origin, repo string) {
	b.Helper()
	link := filepath.Join(p.data, "docker", "registry", "v2", "repositories", strings.Replace(origin, ":", "_", 1),
		filepath.FromSlash(repo), "_manifests", "tags", "v1", "current", "link")
	for i := 0; ; i++ {
		if _, err := os.Stat(link); err == nil {
			return
		}
		if i > 1200 {
			b.Fatalf("%s:v1 never copied into the store (%s)", repo, link)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
