package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook/webhooktest"
)

// BenchmarkAdmission is a small open-loop load generator: reviews of a
// 3-container pod whose images the target has (existence cache warm), sent
// over HTTPS at a fixed 200 reviews/s for 10 s whatever the answers' pace,
// reporting the latency percentiles. ns/op is the mean latency of one
// review. Each invocation runs the whole 10 s; use -benchtime 1x.
// ADMISSION_BENCH_RATE and ADMISSION_BENCH_DURATION override the load.
func BenchmarkAdmission(b *testing.B) {
	rate, duration := 200, 10*time.Second
	if v := os.Getenv("ADMISSION_BENCH_RATE"); v != "" {
		fmt.Sscan(v, &rate)
	}
	if v := os.Getenv("ADMISSION_BENCH_DURATION"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			duration = d
		}
	}

	f := newEngineFixture(b)
	var refs []string
	for _, repo := range []string{"app", "sidecar", "init"} {
		ref := f.src + "/team/" + repo + ":v1"
		img := images.Image(b, 1024, 1, "")
		images.Push(b, ref, img)
		src, _ := imageref.Parse(ref)
		tgt, _ := f.target.Mapper().ToTarget(src)
		images.Push(b, tgt.String(), img)
		// Warm the existence cache, as a running webhook has it.
		if ok, err := f.engine.Exists(context.Background(), src); err != nil || !ok {
			b.Fatalf("%s not in the target: %v", tgt, err)
		}
		refs = append(refs, ref)
	}
	h := f.handler(b, func(o *Options) {
		// Production logging (JSON, info), written nowhere.
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	})
	dir := b.TempDir()
	ca, err := webhooktest.NewCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	certFile, keyFile, err := ca.WriteServing(dir, "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	s := startServerB(b, ServerOptions{CertFile: certFile, KeyFile: keyFile, Webhook: h, Logger: quietLogger()})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: ca.Pool()},
		ForceAttemptHTTP2:   true, // as the API server's webhook client
		MaxIdleConnsPerHost: 64,
	}}
	body := podReview(b, "apps", refs...)
	url := s + "/webhook?timeout=10s"

	send := func() (time.Duration, error) {
		start := time.Now()
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != 200 || !bytes.Contains(out, []byte(`"patch"`)) {
			return 0, fmt.Errorf("status %d, answer %s", resp.StatusCode, out)
		}
		return d, nil
	}
	for range 20 { // connections and TLS sessions up, code paths warm
		if _, err := send(); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	total := int(duration.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, total)
	errs := make([]error, total)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range total {
		// Open loop: each review leaves on schedule, late answers or not.
		time.Sleep(time.Until(begin.Add(time.Duration(i) * interval)))
		wg.Go(func() { lat[i], errs[i] = send() })
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()

	for _, err := range errs {
		if err != nil {
			b.Fatalf("review failed: %v", err)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max_ms")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "reviews/s")
	b.ReportMetric(float64(sum.Nanoseconds())/float64(total), "ns/op")
}

// startServerB serves o on a loopback port until the benchmark ends.
func startServerB(b *testing.B, o ServerOptions) string {
	b.Helper()
	s, err := NewServer(o)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := listenLoopback()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	return "https://" + ln.Addr().String()
}
