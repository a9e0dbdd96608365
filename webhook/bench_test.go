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
// reporting the latency percentiles. The reference, measured first in the
// same run at the same rate, is the same server with a handler that only
// reads the review and writes the webhook's answer back: what HTTPS and
// the server cost on this machine without any decision (ref-p50_ms, ...).
// ns/op is the mean latency of one review. Each invocation runs the whole
// load twice; use -benchtime 1x.
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

	post := func(base string) (time.Duration, []byte, error) {
		start := time.Now()
		resp, err := client.Post(base+"/webhook?timeout=10s", "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil {
			return 0, nil, err
		}
		if resp.StatusCode != 200 || !bytes.Contains(out, []byte(`"patch"`)) {
			return 0, nil, fmt.Errorf("status %d, answer %s", resp.StatusCode, out)
		}
		return d, out, nil
	}
	send := func(base string) (time.Duration, error) { d, _, err := post(base); return d, err }
	var answer []byte // the webhook's, which the reference echoes
	for range 20 {    // connections and TLS sessions up, code paths warm
		if _, answer, err = post(s); err != nil {
			b.Fatal(err)
		}
	}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	})
	ref := startServerB(b, ServerOptions{CertFile: certFile, KeyFile: keyFile, Webhook: echo, Logger: quietLogger()})
	for range 20 {
		if _, err := send(ref); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	refLat := openLoop(b, rate, duration, func() (time.Duration, error) { return send(ref) })
	begin := time.Now()
	lat := openLoop(b, rate, duration, func() (time.Duration, error) { return send(s) })
	elapsed := time.Since(begin)
	b.StopTimer()

	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(percentileMs(lat, 0.50), "p50_ms")
	b.ReportMetric(percentileMs(lat, 0.99), "p99_ms")
	b.ReportMetric(percentileMs(lat, 1), "max_ms")
	b.ReportMetric(percentileMs(refLat, 0.50), "ref-p50_ms")
	b.ReportMetric(percentileMs(refLat, 0.99), "ref-p99_ms")
	b.ReportMetric(percentileMs(refLat, 1), "ref-max_ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "reviews/s")
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "ns/op")
}

// openLoop calls send rate times a second for duration, each call on
// schedule however late earlier answers are, and returns the latencies,
// sorted. Any error fails b.
func openLoop(b *testing.B, rate int, duration time.Duration, send func() (time.Duration, error)) []time.Duration {
	b.Helper()
	total := int(duration.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, total)
	errs := make([]error, total)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range total {
		time.Sleep(time.Until(begin.Add(time.Duration(i) * interval)))
		wg.Go(func() { lat[i], errs[i] = send() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatalf("review failed: %v", err)
		}
	}
	slices.Sort(lat)
	return lat
}

// percentileMs is the p-th latency of sorted lat, in milliseconds.
func percentileMs(lat []time.Duration, p float64) float64 {
	return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
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
