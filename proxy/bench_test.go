package proxy

// Benchmarks of the node proxy as a process of the built binary (so its
// RSS is its own) between real registry processes:
//
//	go test -run '^$' -bench . -benchtime 3x ./proxy/
//
// The pulling client does what containerd does: HEAD the tag with ?ns=,
// GET the manifest by digest, then the config and layers three at a time,
// checking every digest.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

const (
	benchLayers    = 4
	benchLayerSize = 64 << 20 // 4 x 64 MiB = 256 MiB
)

// benchStack is a source and a target registry with the proxy between.
type benchStack struct {
	env
	addr string // the proxy's
	cmd  *exec.Cmd
}

func startBenchStack(b *testing.B) *benchStack {
	b.Helper()
	s := &benchStack{env: env{src: registryproc.Start(b, registryproc.Options{}), tgt: registryproc.Start(b, registryproc.Options{})}}
	s.addr = registryproc.FreeAddr(b)
	dir := b.TempDir()
	cfg := fmt.Sprintf("logLevel: warn\ntarget:\n  type: generic\n  generic:\n    registry: %q\n    insecure: true\n"+
		"proxy:\n  registries: [%q]\n", s.tgt.Addr, s.src.Addr)
	s.cmd = startBenchProxy(b, dir, cfg, s.addr, "proxy")
	return s
}

// startBenchProxy runs the node proxy binary (the chart's DaemonSet's) with
// cfg on addr, its spool under dir (more flags after), and waits until it
// answers. Its log goes to a file, shown on failure: on the benchmark's
// stderr it could split a result line that hack/benchtable reads.
func startBenchProxy(b *testing.B, dir, cfg, addr, name string, flags ...string) *exec.Cmd {
	b.Helper()
	must(b, os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600))
	args := append([]string{"proxy", "--config", filepath.Join(dir, "config.yml"),
		"--listen-address", addr, "--spool-dir", filepath.Join(dir, "spool")}, flags...)
	cmd := exec.Command(swapperbin.ProxyPath(b), append(args, profileFlags(b, name)...)...)
	logFile, err := os.Create(filepath.Join(dir, "proxy.log"))
	must(b, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	must(b, cmd.Start())
	b.Cleanup(func() {
		stopProcess(cmd)
		logFile.Close()
		if b.Failed() {
			if out, err := os.ReadFile(logFile.Name()); err == nil {
				b.Logf("%s log:\n%s", name, out)
			}
		}
	})
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return cmd
		}
		if i > 400 {
			b.Fatalf("the %s did not start", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pull fetches repo:tag like containerd and returns the bytes read.
func pull(ctx context.Context, base, ns, repo, tag string) (int64, error) {
	q := ""
	if ns != "" {
		q = "?ns=" + ns
	}
	get := func(method, kind, ref string, h http.Header) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+"/v2/"+repo+"/"+kind+"/"+ref+q, nil)
		if err != nil {
			return nil, err
		}
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("%s %s/%s: %s", method, kind, ref, resp.Status)
		}
		return resp, err
	}
	accept := http.Header{"Accept": {upstream.AcceptManifests().Get("Accept")}}
	resp, err := get(http.MethodHead, registry.Manifests, tag, accept)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	dgst := resp.Header.Get("Docker-Content-Digest")
	resp, err = get(http.MethodGet, registry.Manifests, dgst, accept)
	if err != nil {
		return 0, err
	}
	var m v1.Manifest
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	var total int64
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n, err := fetchBlob(get, d.Digest)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return total, firstErr
}

func fetchBlob(get func(method, kind, ref string, h http.Header) (*http.Response, error), d v1.Hash) (int64, error) {
	resp, err := get(http.MethodGet, registry.Blobs, d.String(), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return n, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return n, fmt.Errorf("blob %s: got sha256:%s", d, got)
	}
	return n, nil
}

// BenchmarkWarmPull pulls a 256 MiB, 4-layer image the target holds,
// straight from the target registry and through the proxy, alternately.
// ratio is proxy throughput over direct throughput (1 = no cost).
func BenchmarkWarmPull(b *testing.B) {
	s := startBenchStack(b)
	want := s.push(b, "bench/warm", "v1", blobImage(b, benchLayers, benchLayerSize))
	ctx := context.Background()
	proxyBase, targetBase := "http://"+s.addr, "http://"+s.tgt.Addr
	if _, err := pull(ctx, proxyBase, s.src.Addr, "bench/warm", "v1"); err != nil {
		b.Fatal(err)
	}
	waitBenchTarget(b, s, "bench/warm", want)
	var direct, proxied time.Duration
	var n int64
	// One untimed round of each warms caches on both paths.
	for i := -1; i < b.N; i++ {
		t0 := time.Now()
		got, err := pull(ctx, targetBase, "", s.mirrorRepo("bench/warm"), "v1")
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := pull(ctx, proxyBase, s.src.Addr, "bench/warm", "v1"); err != nil {
			b.Fatal(err)
		}
		if i >= 0 {
			direct += t1.Sub(t0)
			proxied += time.Since(t1)
			n += got
		}
		if i == -1 {
			b.ResetTimer()
		}
	}
	mb := float64(n) / (1 << 20)
	b.ReportMetric(mb/direct.Seconds(), "direct-MiB/s")
	b.ReportMetric(mb/proxied.Seconds(), "proxy-MiB/s")
	b.ReportMetric(direct.Seconds()/proxied.Seconds(), "ratio")
}

// BenchmarkColdPull10 pulls a new 256 MiB, 4-layer image with 10 clients
// at once, first straight from the source (the reference), then through
// the proxy (ns/op is that wall time), and counts the source's fetches of
// each blob and the bytes it sent (its access log) once the copy into the
// target is done too. peak-RSS-MiB is the proxy process's VmHWM.
func BenchmarkColdPull10(b *testing.B) {
	s := startBenchStack(b)
	ctx := context.Background()
	pid := s.cmd.Process.Pid
	peakAnon := samplePeak(pid, "RssAnon")
	b.Cleanup(func() { peakAnon() })
	maxFetches, directFetches := 0, 0
	var wall, directWall time.Duration
	var imgBytes, originB, directOriginB int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		repo := fmt.Sprintf("bench/cold%d", i)
		img := blobImage(b, benchLayers, benchLayerSize)
		want := s.push(b, repo, "v1", img)
		imgBytes += imageBytes(b, img)
		s.src.ResetLog()
		// The reference: the same 10 pulls straight from the source.
		d, err := pullN(ctx, 10, "http://"+s.src.Addr, "", repo)
		if err != nil {
			b.Fatal(err)
		}
		directWall += d
		directOriginB += originBytes(s.src)
		for _, d := range blobs(b, img) {
			directFetches = max(directFetches, s.src.Count(http.MethodGet, "/blobs/"+d.String()))
		}
		s.src.ResetLog()
		b.StartTimer()
		d, err = pullN(ctx, 10, "http://"+s.addr, s.src.Addr, repo)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		wall += d
		waitBenchTarget(b, s, repo, want)
		for _, d := range blobs(b, img) {
			maxFetches = max(maxFetches, s.src.Count(http.MethodGet, "/blobs/"+d.String()))
		}
		originB += originBytes(s.src)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/op")
	b.ReportMetric(directWall.Seconds()/float64(b.N), "direct-wall-s/op")
	b.ReportMetric(float64(maxFetches), "max-source-fetches/blob")
	b.ReportMetric(float64(directFetches), "direct-max-source-fetches/blob")
	b.ReportMetric(float64(originB)/float64(imgBytes), "origin-B/image-B")
	b.ReportMetric(float64(directOriginB)/float64(imgBytes), "direct-origin-B/image-B")
	b.ReportMetric(float64(procStatus(pid, "VmHWM"))/1024, "peak-RSS-MiB")
	b.ReportMetric(float64(peakAnon())/1024, "peak-anon-RSS-MiB")
}

// waitBenchTarget waits until the copy of repo:v1 is in the target.
func waitBenchTarget(b *testing.B, s *benchStack, repo string, want v1.Hash) {
	b.Helper()
	url := "http://" + s.tgt.Addr + "/v2/" + s.mirrorRepo(repo) + "/manifests/v1"
	for i := 0; ; i++ {
		req, _ := http.NewRequest(http.MethodHead, url, nil)
		req.Header.Set("Accept", upstream.AcceptManifests().Get("Accept"))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.Header.Get("Docker-Content-Digest") == want.String() {
				return
			}
		}
		if i > 2400 {
			b.Fatalf("the copy of %s never reached the target", repo)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// samplePeak samples a kB field of /proc/PID/status every 20ms (RssAnon's
// peak is the proxy's own memory, without the binary's pages) until the
// returned func is first called; it returns the peak.
func samplePeak(pid int, field string) (stop func() int64) {
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var p int64
		for {
			select {
			case <-done:
				peak <- max(p, procStatus(pid, field))
				return
			case <-t.C:
				p = max(p, procStatus(pid, field))
			}
		}
	}()
	return sync.OnceValue(func() int64 { close(done); return <-peak })
}

// procStatus reads a kB field of /proc/PID/status.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// profileFlags has a benchmark's process write pprof profiles into
// $BENCH_PROFILE_DIR (named after the benchmark and the process), when set.
func profileFlags(b *testing.B, name string) []string {
	dir := os.Getenv("BENCH_PROFILE_DIR")
	if dir == "" {
		return nil
	}
	base := filepath.Join(dir, strings.NewReplacer("/", "-", " ", "_").Replace(b.Name())+"-"+name)
	b.Logf("profiles of %s: %s.{cpu,block,mutex}.pprof", name, base)
	return []string{"--cpu-profile", base + ".cpu.pprof", "--block-profile", base + ".block.pprof",
		"--mutex-profile", base + ".mutex.pprof"}
}

// stopProcess ends cmd with SIGTERM (so it writes its profiles), then a kill
// after a grace period.
func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
