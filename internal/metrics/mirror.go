package metrics

import "github.com/prometheus/client_golang/prometheus"

// Copy engine metrics.
var (
	CopiesTotal = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "copies_total",
		Help: "Image copies by result: copied, present (already in the target), failed, dropped (queue full).",
	}, []string{"result"}))
	CopyDuration = register(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "copy_duration_seconds",
		Help:    "Time to mirror one image into the target, by result.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	}, []string{"result"}))
	CopyQueueDepth = register(prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "copy_queue_depth",
		Help: "Copies waiting in the queue for a worker.",
	}))
	CopiesInFlight = register(prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "copies_in_flight",
		Help: "Copies being run now.",
	}))
	ManifestsWritten = register(prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "copy_manifests_written_total",
		Help: "Manifests (images and indexes) written to the target.",
	}))
	ReferrerCopies = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "referrer_copies_total",
		Help: "Signatures, attestations, SBOMs and OCI referrers copied after their image, by result: copied, " +
			"failed (the image copy stands), dropped (referrer queue full; copied with the image's next copy).",
	}, []string{"result"}))
	ExistsCache = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "exists_cache_total",
		Help: "Existence checks of target images by outcome: hit or miss of the cache.",
	}, []string{"outcome"}))
	TargetCheckErrors = register(prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "target_check_errors_total",
		Help: "Existence checks the target failed to answer (not \"not found\": an error or no answer in time); " +
			"the image counts as missing, so an exists policy keeps the original.",
	}))
	UpstreamRetries = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "upstream_retries_total",
		Help: "Registry requests retried after 429 or 5xx, by registry host and status.",
	}, []string{"registry", "code"}))
)
