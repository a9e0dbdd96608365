package hub

// The hub's benchmark for `make bench` (hack/benchtable pairs each figure
// with its reference, measured in the same run):
//
//	go test -run '^$' -bench '^BenchmarkHubColdPull$' -benchtime 1x -count 5 ./proxy/hub/

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/mirrorpull"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// BenchmarkHubColdPull: N node proxy processes (N = 1, 4, 8, 16) cold-pull
// one new image (3 layers of 16 MiB) at the same moment, through a hub
// (hub-*) and, as the reference, each straight from the origin (direct-*):
// the origin's GETs per blob (the most any blob got) and the wall time of
// the N pulls.
func BenchmarkHubColdPull(b *testing.B) {
	bin, proxyBin := swapperbin.Path(b), swapperbin.ProxyPath(b)
	src := registryproc.Start(b, registryproc.Options{})
	tgt := registryproc.Start(b, registryproc.Options{})
	hubAddr := registryproc.FreeAddr(b)
	cfg := fmt.Sprintf("logLevel: warn\ntarget:\n  type: generic\n  generic: {registry: %q, insecure: true}\nproxy:\n  registries: [%q]\n", tgt.Addr, src.Addr)
	startProcess(b, bin, "hub", cfg, hubAddr)
	var direct, viaHub []string
	for range 16 {
		a, h := registryproc.FreeAddr(b), registryproc.FreeAddr(b)
		startProcess(b, proxyBin, "proxy", cfg, a)
		startProcess(b, proxyBin, "proxy", cfg+fmt.Sprintf("hub: {url: %q}\n", "http://"+hubAddr), h)
		direct, viaHub = append(direct, a), append(viaHub, h)
	}
	for _, n := range []int{1, 4, 8, 16} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var hubWall, directWall time.Duration
			var hubMax, directMax int
			for range b.N {
				for _, side := range []struct {
					name  string
					nodes []string
					wall  *time.Duration
					most  *int
				}{{"direct", direct[:n], &directWall, &directMax}, {"hub", viaHub[:n], &hubWall, &hubMax}} {
					// -count repeats a sub-benchmark in one process, on the same
					// registries: each pull is of a repository never pulled before.
					repo := fmt.Sprintf("bench/%s-n%d-%d", side.name, n, runs.Add(1))
					img, err := random.Image(16<<20, 3)
					if err != nil {
						b.Fatal(err)
					}
					images.Push(b, src.Addr+"/"+repo+":v1", img)
					src.ResetLog()
					*side.wall += pullAtOnce(b, side.nodes, src.Addr, repo)
					*side.most = max(*side.most, mostGETs(b, src, repo, img))
				}
			}
			b.ReportMetric(hubWall.Seconds()/float64(b.N), "hub-wall-s")
			b.ReportMetric(directWall.Seconds()/float64(b.N), "direct-wall-s")
			b.ReportMetric(float64(hubMax), "hub-origin-GETs/blob")
			b.ReportMetric(float64(directMax), "direct-origin-GETs/blob")
		})
	}
}

// runs numbers the pulls of all runs.
var runs atomic.Int64

// pullAtOnce has every node pull repo:v1 at the same moment and returns the wall time.
func pullAtOnce(b *testing.B, nodes []string, ns, repo string) time.Duration {
	b.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	start := time.Now()
	for i, addr := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = mirrorpull.Pull(context.Background(), addr, ns, repo, "v1") }()
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return took
}

// mostGETs is the most GETs the origin served of any blob of img.
func mostGETs(b *testing.B, src *registryproc.Registry, repo string, img v1.Image) int {
	b.Helper()
	m, err := img.Manifest()
	if err != nil {
		b.Fatal(err)
	}
	most := 0
	for _, l := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		most = max(most, src.Count(http.MethodGet, "/v2/"+repo+"/blobs/"+l.Digest.String()))
	}
	return most
}

// startProcess runs the binary's command (hub or proxy) with cfg on addr
// and waits until it answers; its log goes to a file, shown on failure.
func startProcess(b *testing.B, bin, command, cfg, addr string) {
	b.Helper()
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, command, "--config", filepath.Join(dir, "config.yml"), "--listen-address", addr,
		"--spool-dir", filepath.Join(dir, "spool"))
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
		if b.Failed() {
			out, _ := os.ReadFile(log.Name())
			b.Logf("%s %s log:\n%s", command, addr, out)
		}
	})
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		if i > 400 {
			b.Fatalf("%s on %s did not start", command, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
