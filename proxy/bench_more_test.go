package proxy

// More proxy benchmarks for `make bench`, each with its direct-from-registry
// reference measured in the same run (hack/benchtable pairs them):
//
//	go test -run '^$' -bench '^BenchmarkPull$' -benchtime 1x -count 5 ./proxy/

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// BenchmarkPull follows a new 256 MiB, 4-layer image through its life on
// a node, each phase straight from a registry first (the reference), then
// through the proxy:
//
//   - cold: one pull from the source vs one through the proxy with an empty
//     target. origin-B/image-B counts every byte the source sent for the
//     proxy's pull and for the copy into the target: 1 means the copy
//     reused what the pull fetched.
//   - warm: once the copy is in the target, one pull from the target vs
//     one through the proxy, alternately, warmRounds times (after an
//     untimed round of each, which warms connections, page caches and the
//     proxy's answer for the tag); a 256 MiB pull takes well under a
//     second, so one alone is at the mercy of a neighbour's burst.
//   - warm10: 10 pulls at once from the target vs through the proxy;
//     warm10-peak-RSS-MiB is the proxy's VmHWM over its 10 pulls alone,
//     warm10-peak-anon-RSS-MiB the peak of its anonymous memory.
//
// The cold phase also reports CPU time: cold-cpu-s and cold-direct-cpu-s
// add up every process of the pull (this one, the client; the proxy; both
// registries), cold-proxy-cpu-s is the proxy's share of the proxied pull,
// copy-proxy-cpu-s what the proxy spent copying into the target after it.
// On a machine whose cores the direct pull already keeps busy, the wall
// time follows the CPU time.
//
// ns/op is the time of the proxied pulls.
func BenchmarkPull(b *testing.B) {
	s := startBenchStack(b)
	ctx := context.Background()
	pid := s.cmd.Process.Pid
	proxyBase, srcBase, tgtBase := "http://"+s.addr, "http://"+s.src.Addr, "http://"+s.tgt.Addr
	var m pullFigures
	cpu := cpuClock{proxy: pid, src: s.src.Pid(), tgt: s.tgt.Pid()}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		repo := fmt.Sprintf("bench/pull%d", i)
		img := blobImage(b, benchLayers, benchLayerSize)
		want := s.push(b, repo, "v1", img)
		size := imageBytes(b, img)
		m.imgBytes += size

		s.src.ResetLog()
		c0 := cpu.read()
		m.coldDirect += timed(b, func() error { _, err := pull(ctx, srcBase, "", repo, "v1"); return err })
		c1 := cpu.read()
		m.coldDirectOrigin += originBytes(s.src)
		s.src.ResetLog()
		c2 := cpu.read()
		b.StartTimer()
		m.cold += timed(b, func() error { _, err := pull(ctx, proxyBase, s.src.Addr, repo, "v1"); return err })
		b.StopTimer()
		c3 := cpu.read()
		waitBenchTarget(b, s, repo, want)
		c4 := cpu.read()
		m.coldDirectCPU += c1.sub(c0).all()
		m.coldCPU += c3.sub(c2).all()
		m.coldProxyCPU += c3.sub(c2).proxy
		m.copyProxyCPU += c4.sub(c3).proxy
		m.coldOrigin += originBytes(s.src)

		direct := func() error { _, err := pull(ctx, tgtBase, "", s.mirrorRepo(repo), "v1"); return err }
		proxied := func() error { _, err := pull(ctx, proxyBase, s.src.Addr, repo, "v1"); return err }
		timed(b, direct)
		timed(b, proxied)
		for range warmRounds {
			m.warmDirect += timed(b, direct)
			b.StartTimer()
			m.warm += timed(b, proxied)
			b.StopTimer()
		}

		m.warm10Direct += timed(b, func() error { _, err := pullN(ctx, 10, tgtBase, "", s.mirrorRepo(repo)); return err })
		if err := resetPeakRSS(pid); err != nil {
			b.Logf("warm10 peak RSS is since the proxy started (cannot reset it: %v)", err)
		}
		anon := samplePeak(pid, "RssAnon")
		b.Cleanup(func() { anon() })
		b.StartTimer()
		m.warm10 += timed(b, func() error { _, err := pullN(ctx, 10, proxyBase, s.src.Addr, repo); return err })
		b.StopTimer()
		m.warm10Peak = max(m.warm10Peak, procStatus(pid, "VmHWM"))
		m.warm10PeakAnon = max(m.warm10PeakAnon, anon())
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	mib := float64(m.imgBytes) / (1 << 20)
	b.ReportMetric(m.cold.Seconds()/n, "cold-wall-s")
	b.ReportMetric(m.coldDirect.Seconds()/n, "cold-direct-wall-s")
	b.ReportMetric(m.coldCPU.Seconds()/n, "cold-cpu-s")
	b.ReportMetric(m.coldDirectCPU.Seconds()/n, "cold-direct-cpu-s")
	b.ReportMetric(m.coldProxyCPU.Seconds()/n, "cold-proxy-cpu-s")
	b.ReportMetric(m.copyProxyCPU.Seconds()/n, "copy-proxy-cpu-s")
	b.ReportMetric(float64(m.coldOrigin)/float64(m.imgBytes), "cold-origin-B/image-B")
	b.ReportMetric(float64(m.coldDirectOrigin)/float64(m.imgBytes), "cold-direct-origin-B/image-B")
	b.ReportMetric(warmRounds*mib/m.warm.Seconds(), "warm-MiB/s")
	b.ReportMetric(warmRounds*mib/m.warmDirect.Seconds(), "warm-direct-MiB/s")
	b.ReportMetric(m.warm10.Seconds()/n, "warm10-wall-s")
	b.ReportMetric(m.warm10Direct.Seconds()/n, "warm10-direct-wall-s")
	b.ReportMetric(float64(m.warm10Peak)/1024, "warm10-peak-RSS-MiB")
	b.ReportMetric(float64(m.warm10PeakAnon)/1024, "warm10-peak-anon-RSS-MiB")
}

// warmRounds is how many warm single pulls of each kind one run times.
const warmRounds = 3

// pullFigures add up BenchmarkPull's phases over b.N.
type pullFigures struct {
	imgBytes, coldOrigin, coldDirectOrigin int64
	cold, coldDirect, warm, warmDirect     time.Duration
	warm10, warm10Direct                   time.Duration
	// CPU time of every process of the pull (client, proxy, registries),
	// the proxy's alone, and the proxy's for the copy after the pull.
	coldCPU, coldDirectCPU, coldProxyCPU, copyProxyCPU time.Duration
	warm10Peak, warm10PeakAnon                         int64 // kB
}

// timed runs f and returns how long it took; an error fails b.
func timed(b *testing.B, f func() error) time.Duration {
	b.Helper()
	t0 := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

// pullN runs n pulls of repo:v1 from base at once and returns the wall time.
func pullN(ctx context.Context, n int, base, ns, repo string) (time.Duration, error) {
	errs := make(chan error, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for range n {
		wg.Go(func() {
			if _, err := pull(ctx, base, ns, repo, "v1"); err != nil {
				errs <- fmt.Errorf("pull %s from %s: %w", repo, base, err)
			}
		})
	}
	wg.Wait()
	d := time.Since(t0)
	close(errs)
	return d, <-errs
}

// imageBytes is what a pull of img reads: manifest, config and layers.
func imageBytes(b *testing.B, img v1.Image) int64 {
	raw, err := img.RawManifest()
	must(b, err)
	m, err := img.Manifest()
	must(b, err)
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// accessBytes reads the status and size of a GET in the registry's
// access log (combined log format).
var accessBytes = regexp.MustCompile(`"GET \S+ HTTP/[0-9.]+" (\d{3}) (\d+)`)

// originBytes is the body bytes reg sent for GETs since its log was reset.
func originBytes(reg *registryproc.Registry) int64 {
	reg.Requests() // waits for the log to settle
	var n int64
	for _, m := range accessBytes.FindAllStringSubmatch(reg.Log(), -1) {
		if m[1][0] == '2' {
			v, _ := strconv.ParseInt(m[2], 10, 64)
			n += v
		}
	}
	return n
}

// cpuClock reads the CPU time (user + system) of the benchmark's processes.
type cpuClock struct{ proxy, src, tgt int }

// cpuTimes are the CPU times of the benchmark's processes at one moment.
type cpuTimes struct{ self, proxy, src, tgt time.Duration }

func (c cpuClock) read() cpuTimes {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return cpuTimes{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		proxy: procCPU(c.proxy), src: procCPU(c.src), tgt: procCPU(c.tgt)}
}

func (t cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{self: t.self - o.self, proxy: t.proxy - o.proxy, src: t.src - o.src, tgt: t.tgt - o.tgt}
}

func (t cpuTimes) all() time.Duration { return t.self + t.proxy + t.src + t.tgt }

// procCPU is pid's user + system time from /proc/PID/stat (fields 14 and
// 15, in clock ticks of 10 ms: USER_HZ is 100 on Linux), 0 if unreadable.
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	// The command name (field 2) may hold spaces; the fields after it are
	// numbers.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// resetPeakRSS starts pid's VmHWM afresh (Linux: clear_refs 5).
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
