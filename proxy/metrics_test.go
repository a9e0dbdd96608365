package proxy

import (
	"fmt"
	"slices"
	"testing"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// A proxy that has served nothing already exports its series at zero, for
// each registry it serves, so the first pull shows in rate().
func TestMetricsStartAtZero(t *testing.T) {
	tg, err := target.NewGeneric(target.GenericSpec{Registry: "registry.example.com"})
	must(t, err)
	_, err = New(Options{Target: tg, Sources: newSources(t, fetch.Options{}), Registries: []string{"zero.example.com"}, Logger: quiet()})
	must(t, err)
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"proxy_requests_total", []string{"zero.example.com", "blob", fromTarget}},
		{"proxy_requests_total", []string{"zero.example.com", "manifest", fromFallback}},
		{"proxy_source_fetches_total", []string{"zero.example.com", "blob"}},
		{"proxy_copies_triggered_total", []string{"zero.example.com", "dropped"}},
	} {
		var found bool
		fams, err := metrics.Registry.Gather()
		must(t, err)
		for _, f := range fams {
			if f.GetName() != "k8s_image_swapper_"+c.name {
				continue
			}
			for _, m := range f.GetMetric() {
				match := len(m.GetLabel()) == len(c.labels)
				for _, l := range m.GetLabel() {
					match = match && slices.Contains(c.labels, l.GetValue())
				}
				found = found || match && m.GetCounter().GetValue() == 0
			}
		}
		if !found {
			t.Errorf("%s%v: no zero series", c.name, c.labels)
		}
	}
}

// Repositories are counted by name up to maxImageLabels, then as "other";
// one already named keeps its name.
func TestImageLabelsBounded(t *testing.T) {
	var l imageLabels
	for i := range maxImageLabels {
		if got := l.label(fmt.Sprint("r/", i), "repo"); got != "repo" {
			t.Fatalf("repository %d: %q", i, got)
		}
	}
	if got := l.label("r/new", "new"); got != "other" {
		t.Fatalf("past the bound: %q, want other", got)
	}
	if got := l.label("r/7", "seven"); got != "seven" {
		t.Fatalf("a named repository past the bound: %q", got)
	}
}
