package webhook

import "github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"

// Review results, counted in k8s_image_swapper_admission_requests_total.
const (
	resultPatched    = "patched"
	resultUnchanged  = "unchanged"
	resultIgnored    = "ignored"
	resultBadRequest = "bad_request"
)

// zeroMetrics starts the webhook's series at zero (see metrics.Zero).
func zeroMetrics() {
	metrics.Zero(metrics.ImageDecisions, []string{decisionSwapped, decisionKeptMissing, decisionKeptPrivate, decisionFiltered,
		decisionAlreadyTarget, decisionDryRun, decisionSkipped, decisionInvalid, decisionError})
	metrics.Zero(metrics.AdmissionRequests, []string{resultPatched, resultUnchanged, resultIgnored, resultBadRequest})
}
