package metrics

import "github.com/prometheus/client_golang/prometheus"

// Webhook metrics. The copy queue, copies and the existence cache are
// counted by the copy engine (mirror.go).
var (
	AdmissionRequests = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "admission_requests_total",
		Help: "Admission reviews by result: patched, unchanged, ignored (not a pod create, update or ephemeral container update), bad_request.",
	}, []string{"result"}))
	AdmissionDuration = register(prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "admission_duration_seconds",
		Help:    "Time to answer one admission review.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}))
	ImageDecisions = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "image_decisions_total",
		Help: "Webhook decisions per container image: swapped, kept_missing, kept_private (its source needs credentials " +
			"the pod's pull secrets lack, or could not be asked), filtered, already_target, " +
			"dry_run, skipped (pod opted out), invalid (unparseable image), error (kept because of our own trouble).",
	}, []string{"decision"}))
	DryRun = register(prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "dry_run",
		Help: "1 while the config says dryRun: true (the webhook neither copies nor rewrites images, the proxy copies nothing, the node setup writes no hosts.toml), else 0.",
	}))
)
