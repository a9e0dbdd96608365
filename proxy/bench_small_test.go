package proxy

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// smallRounds is how many new images of small layers one run pulls, each
// straight from the source and then through the proxy.
const smallRounds = 5

// BenchmarkColdPullSmall: cold pulls of images of many small layers (48 x
// 64 KiB, as images built in many steps have), where what the proxy does
// per blob counts more than the bytes. Reference: the same pull straight
// from the source, just before, in the same run.
func BenchmarkColdPullSmall(b *testing.B) {
	const layers, size = 48, 64 << 10
	s := startBenchStack(b)
	ctx := context.Background()
	var cold, direct time.Duration
	b.ResetTimer()
	for i := range b.N {
		for r := range smallRounds {
			b.StopTimer()
			repo := fmt.Sprintf("bench/small%d-%d", i, r)
			want := s.push(b, repo, "v1", blobImage(b, layers, size))
			direct += timed(b, func() error { _, err := pull(ctx, "http://"+s.src.Addr, "", repo, "v1"); return err })
			b.StartTimer()
			cold += timed(b, func() error { _, err := pull(ctx, "http://"+s.addr, s.src.Addr, repo, "v1"); return err })
			b.StopTimer()
			waitBenchTarget(b, s, repo, want)
			b.StartTimer()
		}
	}
	b.StopTimer()
	n := float64(b.N * smallRounds)
	b.ReportMetric(cold.Seconds()*1000/n, "cold-ms")
	b.ReportMetric(direct.Seconds()*1000/n, "cold-direct-ms")
}
