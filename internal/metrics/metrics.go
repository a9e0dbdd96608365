// Package metrics defines every Prometheus metric the binary exports, all
// prefixed k8s_image_swapper_, on one registry served at /metrics.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "k8s_image_swapper"

// Registry holds every metric of this process.
var Registry = prometheus.NewRegistry()

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
}

// Handler serves Registry.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}

func register[C prometheus.Collector](c C) C {
	Registry.MustRegister(c)
	return c
}

// Zero creates the series of vec for every combination of values (one list
// per label, in the label order) at zero. A labelled series is otherwise
// created by its first increment, which rate() and increase() then never
// see: the first copy, a fresh proxy's first hit. Components call it at
// start with the label values they use.
func Zero[T any](vec interface{ WithLabelValues(...string) T }, values ...[]string) {
	combo := make([]string, len(values))
	var walk func(i int)
	walk = func(i int) {
		if i == len(values) {
			vec.WithLabelValues(combo...)
			return
		}
		for _, v := range values[i] {
			combo[i] = v
			walk(i + 1)
		}
	}
	walk(0)
}
