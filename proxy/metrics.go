package proxy

import (
	"slices"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// Kinds of content as metrics name them.
var metricKinds = []string{"manifest", "blob"}

// zeroMetrics starts the proxy's series at zero for the registries it
// serves (see metrics.Zero).
func (p *Proxy) zeroMetrics() {
	sources := make([]string, 0, len(p.allowed))
	for r := range p.allowed {
		sources = append(sources, r)
	}
	slices.Sort(sources)
	registries := append([]string{"target", "unknown"}, sources...)
	from := []string{fromTarget, fromSource, fromFallback}
	if r := p.sources.RelayRole(); r != "" {
		from = append(from, r)
		metrics.Zero(metrics.RelayRequests, []string{r}, []string{"served", "fallback"})
	}
	metrics.Zero(metrics.ProxyRequests, registries, metricKinds, append(from, fromError))
	metrics.Zero(metrics.ProxyBytes, from)
	metrics.Zero(metrics.ProxyUpstreamDuration, []string{upstream.Target, upstream.Source}, metricKinds)
	metrics.Zero(metrics.ProxyCoalesced, metricKinds)
	metrics.Zero(metrics.ProxySourceFetches, sources, metricKinds)
	metrics.Zero(metrics.ProxyCopiesTriggered, sources, []string{"queued", "dropped"})
	metrics.Zero(metrics.ProxyDigestMismatches, sources)
	metrics.Zero(metrics.ProxyWrites, []string{"accepted", "read_only", "unauthenticated", "mirror_path"})
	metrics.Zero(metrics.ProxyUntrusted, []string{"digest_mismatch", "tag_not_copied"})
}
