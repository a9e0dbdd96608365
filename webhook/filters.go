package webhook

import (
	"encoding/json"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// skipped tells whether the pod opts out with skipKey.
func skipped(pod *corev1.Pod) bool {
	return strings.EqualFold(pod.Labels[skipKey], "true") || strings.EqualFold(pod.Annotations[skipKey], "true")
}

// filterDoc is the pod as generic JSON, with metadata.namespace filled from
// the request when empty, as the original does.
func (rv *review) filterDoc() map[string]any {
	var doc map[string]any
	if err := json.Unmarshal(rv.req.object, &doc); err != nil || doc == nil {
		doc = map[string]any{}
	}
	meta, _ := doc["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		doc["metadata"] = meta
	}
	if ns, _ := meta["namespace"].(string); ns == "" {
		meta["namespace"] = rv.req.namespace
	}
	return doc
}

func (rv *review) filtered(doc map[string]any, s *slot) bool {
	var container any
	if spec, ok := doc["spec"].(map[string]any); ok {
		if list, ok := spec[s.list].([]any); ok && s.index < len(list) {
			container = list[s.index]
		}
	}
	matched, err := rv.h.o.Filter.Match(doc, container)
	if err != nil {
		// The original's rule: a failing filter ends the evaluation, unfiltered.
		rv.log.Warn("filter failed: container not filtered, later filters not evaluated", "container", s.name, "error", err)
	}
	return matched != ""
}
