package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"a", "b"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Help: "h"}, []string{"a"})
	reg.MustRegister(c, h)
	Zero(c, []string{"1", "2", "3"}, []string{"p", "q"})
	Zero(h, []string{"1", "2"})
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if m.GetCounter().GetValue() != 0 || m.GetHistogram().GetSampleCount() != 0 {
				t.Errorf("%s %v is not zero", f.GetName(), m.GetLabel())
			}
			got[f.GetName()]++
		}
	}
	if got["x_total"] != 6 || got["h"] != 2 {
		t.Fatalf("series %v, want x_total: 6 (3 x 2) and h: 2", got)
	}
}
