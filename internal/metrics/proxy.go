package metrics

import "github.com/prometheus/client_golang/prometheus"

// Node proxy metrics.
var (
	ProxyRequests = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "proxy_requests_total",
		Help: "Manifest and blob requests by registry, kind (manifest|blob) and where they were served from: " +
			"target, source, fallback (a target reference served from its source) or error.",
	}, []string{"registry", "kind", "served_from"}))
	ProxyImageRequests = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "proxy_image_requests_total",
		Help: "Manifest requests by source registry and repository (a pull asks for one manifest or a few), for " +
			"the most pulled images. Past 1000 repositories a proxy counts the others as repository=\"other\".",
	}, []string{"registry", "repository"}))
	RelayRequests = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "relay_requests_total",
		Help: "Requests for source content sent first to a relay, by relay (hub: a node proxy asking the hub; peer: " +
			"a hub replica asking the replica that owns the repository; hub-api: the webhook asking the hub) and result: " +
			"served, or fallback (it failed, " +
			"stalled or had nothing, and the source was asked).",
	}, []string{"relay", "result"}))
	ProxyBytes = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "proxy_bytes_total",
		Help: "Bytes of manifests and blobs sent to clients, by where they came from: target, source or fallback.",
	}, []string{"origin"}))
	ProxyUpstreamDuration = register(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "proxy_upstream_duration_seconds",
		Help:    "Time until an upstream registry answered (response headers), by upstream (target|source) and kind.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"upstream", "kind"}))
	ProxyInFlight = register(prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "proxy_requests_in_flight",
		Help: "Requests the proxy is serving now.",
	}))
	ProxyCopiesTriggered = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "proxy_copies_triggered_total",
		Help: "Copies into the target the proxy asked for, by registry and result (queued|dropped).",
	}, []string{"registry", "result"}))
	ProxySourceFetches = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "proxy_source_fetches_total",
		Help: "Fetches of manifests and blobs from source registries (after coalescing), by registry and kind.",
	}, []string{"registry", "kind"}))
	ProxyCoalesced = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "proxy_coalesced_total",
		Help: "Requests that shared a fetch already in flight or just finished instead of asking the source, by kind.",
	}, []string{"kind"}))
	ProxyDigestMismatches = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "proxy_digest_mismatches_total",
		Help: "Source responses whose bytes did not match their digest (the transfer was aborted), by registry.",
	}, []string{"registry"}))
)

// Node proxy write and trust metrics.
var (
	ProxyWrites = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "proxy_writes_total",
		Help: "Write requests (uploads, manifest PUTs, DELETEs) by result: accepted (an authenticated push, " +
			"target.local.push), read_only (pushes are off), unauthenticated, or mirror_path (a push into a mirror).",
	}, []string{"result"}))
	ProxyUntrusted = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "proxy_untrusted_total",
		Help: "Target answers not served because they could not be trusted, by reason: digest_mismatch (the bytes " +
			"do not match their digest) or tag_not_copied (a tag in the local store that no copy wrote).",
	}, []string{"reason"}))
)

// Hub metrics; the hub also counts what a proxy counts (it serves the same API).
var (
	HubAPIRequests = register(prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "hub_api_requests_total",
		Help: "Questions the webhook asked the hub and this replica answered, by question: exists or copy.",
	}, []string{"question"}))
	HubForwards = register(prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "hub_forwards_total",
		Help: "Questions passed to the replica that owns the image's repository.",
	}))
	HubPeers = register(prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "hub_peers",
		Help: "Hub replicas this replica knows of, itself included.",
	}))
	FetchesInFlight = register(prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "fetches_in_flight",
		Help: "Blobs being fetched from sources or relays now (each shared by every reader).",
	}))
)
