package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

// Image decisions, counted in k8s_image_swapper_image_decisions_total.
const (
	decisionSwapped       = "swapped"
	decisionKeptMissing   = "kept_missing"
	decisionFiltered      = "filtered"
	decisionAlreadyTarget = "already_target"
	decisionDryRun        = "dry_run"
	decisionSkipped       = "skipped"
	decisionInvalid       = "invalid"
	decisionError         = "error"
)

// Review results, counted in k8s_image_swapper_admission_requests_total.
const (
	resultPatched    = "patched"
	resultUnchanged  = "unchanged"
	resultIgnored    = "ignored"
	resultBadRequest = "bad_request"
)

// zeroMetrics starts the webhook's series at zero (see metrics.Zero).
func zeroMetrics() {
	metrics.Zero(metrics.ImageDecisions, []string{decisionSwapped, decisionKeptMissing, decisionFiltered,
		decisionAlreadyTarget, decisionDryRun, decisionSkipped, decisionInvalid, decisionError})
	metrics.Zero(metrics.AdmissionRequests, []string{resultPatched, resultUnchanged, resultIgnored, resultBadRequest})
}

// slot is one image field of the pod.
type slot struct {
	list  string // containers, initContainers or ephemeralContainers
	index int
	name  string
	image string
	// pullAlways: imagePullPolicy Always, the kubelet pulls the tag each start.
	pullAlways bool
	// filled in by admit
	src      reference.Named
	decision string
	target   string // the image to write, when decision is swapped
}

func (s *slot) path() string { return fmt.Sprintf("/spec/%s/%d/image", s.list, s.index) }

// review is one admission in progress.
type review struct {
	h   *Handler
	req *request
	pod *corev1.Pod
	log *slog.Logger
	// keychain is the pod's pull secrets, read once and only when a copy starts.
	keychain func() authn.Keychain
}

// admit decides every image of the pod in req and returns the patch. It
// never fails: trouble leaves an image as it was.
func (h *Handler) admit(ctx context.Context, req *request) (resp response, result string) {
	log := h.o.Logger.With("uid", string(req.uid), "namespace", req.namespace, "operation", req.operation)
	if req.subResource != "" {
		log = log.With("subresource", req.subResource)
	}
	// A bug of ours must not cost a pod its admission: answer unchanged.
	defer func() {
		if r := recover(); r != nil {
			log.Error("pod left unchanged: internal error", "panic", fmt.Sprint(r))
			resp, result = response{}, resultUnchanged
		}
	}()
	if req.kind.Group != "" || req.kind.Kind != "Pod" {
		log.Debug("not a pod: allowed unchanged", "kind", req.kind.String())
		return response{}, resultIgnored
	}
	var ephemeralOnly bool
	switch {
	case req.operation == "CREATE" && req.subResource == "":
	case req.operation == "UPDATE" && req.subResource == "":
	case req.operation == "UPDATE" && req.subResource == "ephemeralcontainers":
		ephemeralOnly = true
	default:
		log.Debug("not a pod creation, update or new ephemeral container: allowed unchanged")
		return response{}, resultIgnored
	}
	pod, err := decodePod(req.object)
	if err != nil {
		log.Warn("pod left unchanged: cannot decode it", "error", err)
		return response{}, resultUnchanged
	}
	log = log.With("pod", podName(pod, req))
	slots := podSlots(pod, !ephemeralOnly)
	if req.operation == "UPDATE" {
		old, err := decodePod(req.oldObject)
		if err != nil {
			log.Warn("pod left unchanged: cannot decode its old object", "error", err)
			return response{}, resultUnchanged
		}
		if ephemeralOnly {
			// Existing ephemeral containers may not change; touch only new ones.
			slots = newEphemeral(slots, old)
		} else {
			// An update is decided as a creation, for the images it changes
			// only: rewriting one it left alone would restart that container.
			slots = changedImages(slots, old)
		}
	}
	if len(slots) == 0 {
		log.Debug("no images to review: allowed unchanged")
		return response{}, resultUnchanged
	}

	rv := &review{h: h, req: req, pod: pod, log: log}
	rv.keychain = sync.OnceValue(rv.podKeychain)
	rv.decide(ctx, slots)
	return rv.answer(ctx, slots)
}

// answer counts and logs the decisions and patches the swapped images.
func (rv *review) answer(ctx context.Context, slots []*slot) (response, string) {
	var ops []patchOp
	var attrs []any
	level := slog.LevelDebug // leaving alone what we must is not news
	for _, s := range slots {
		metrics.ImageDecisions.WithLabelValues(s.decision).Inc()
		attrs = append(attrs, slog.Group(s.list+"."+s.name, "image", s.image, "decision", s.decision, "target", s.target))
		if s.decision == decisionSwapped {
			ops = append(ops, patchOp{Op: "replace", Path: s.path(), Value: s.target})
		}
		if s.decision != decisionAlreadyTarget && s.decision != decisionFiltered && s.decision != decisionSkipped {
			level = slog.LevelInfo
		}
	}
	rv.log.Log(ctx, level, "pod reviewed", attrs...)
	if len(ops) == 0 {
		return response{}, resultUnchanged
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		rv.log.Error("pod left unchanged: cannot encode patch", "error", err)
		return response{}, resultUnchanged
	}
	return response{patch: patch}, resultPatched
}

// decodePod reads a pod as the API server does (strictUnmarshal), so that a
// patch path names a field that really is in the object.
func decodePod(raw []byte) (*corev1.Pod, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("no object in the request")
	}
	pod := &corev1.Pod{}
	if err := strictUnmarshal(raw, pod); err != nil {
		return nil, err
	}
	return pod, nil
}

func podName(pod *corev1.Pod, req *request) string {
	switch {
	case pod.Name != "":
		return pod.Name
	case req.name != "":
		return req.name
	case pod.GenerateName != "":
		return pod.GenerateName + "*"
	}
	return ""
}

// podSlots lists the image fields in the order they appear.
func podSlots(pod *corev1.Pod, all bool) []*slot {
	var out []*slot
	if all {
		for i, c := range pod.Spec.InitContainers {
			out = append(out, &slot{list: "initContainers", index: i, name: c.Name, image: c.Image,
				pullAlways: c.ImagePullPolicy == corev1.PullAlways})
		}
		for i, c := range pod.Spec.Containers {
			out = append(out, &slot{list: "containers", index: i, name: c.Name, image: c.Image,
				pullAlways: c.ImagePullPolicy == corev1.PullAlways})
		}
	}
	for i, c := range pod.Spec.EphemeralContainers {
		out = append(out, &slot{list: "ephemeralContainers", index: i, name: c.Name, image: c.Image,
			pullAlways: c.ImagePullPolicy == corev1.PullAlways})
	}
	return out
}

// changedImages keeps the slots whose image differs from the same
// container's in old (or whose container old lacks).
func changedImages(slots []*slot, old *corev1.Pod) []*slot {
	was := map[string]string{}
	for _, s := range podSlots(old, true) {
		was[s.list+"/"+s.name] = s.image
	}
	var out []*slot
	for _, s := range slots {
		if image, ok := was[s.list+"/"+s.name]; !ok || image != s.image {
			out = append(out, s)
		}
	}
	return out
}

func newEphemeral(slots []*slot, old *corev1.Pod) []*slot {
	had := map[string]bool{}
	for _, c := range old.Spec.EphemeralContainers {
		had[c.Name] = true
	}
	var out []*slot
	for _, s := range slots {
		if !had[s.name] {
			out = append(out, s)
		}
	}
	return out
}

// decide sets every slot's decision: opt-out, already a target, filtered,
// then the swap and copy policies, one check per distinct image.
func (rv *review) decide(ctx context.Context, slots []*slot) {
	if skipped(rv.pod) {
		for _, s := range slots {
			s.decision = decisionSkipped
		}
		return
	}
	var doc map[string]any // the pod as the filters see it, built once
	todo := map[string][]*slot{}
	var order []string
	for _, s := range slots {
		src, err := imageref.Parse(s.image)
		if err != nil {
			s.decision = decisionInvalid
			rv.log.Warn("image left unchanged: invalid reference", "container", s.name, "image", s.image, "error", err)
			continue
		}
		s.src = src
		if rv.h.o.Mapper.IsTarget(src) {
			s.decision = decisionAlreadyTarget
			continue
		}
		if !rv.h.o.Filter.Empty() {
			if doc == nil {
				doc = rv.filterDoc()
			}
			if rv.filtered(doc, s) {
				s.decision = decisionFiltered
				continue
			}
		}
		key := src.String()
		if _, ok := todo[key]; !ok {
			order = append(order, key)
		}
		todo[key] = append(todo[key], s)
	}
	apply := func(key string) {
		group := todo[key]
		decision, target := decisionError, ""
		defer func() {
			// A goroutine's panic is not the caller's to recover.
			if r := recover(); r != nil {
				rv.log.Error("image left unchanged: internal error", "image", key, "panic", fmt.Sprint(r))
				decision, target = decisionError, ""
			}
			for _, s := range group {
				s.decision, s.target = decision, target
			}
		}()
		always := false
		for _, s := range group {
			always = always || s.pullAlways
		}
		decision, target = rv.decideImage(ctx, group[0].src, always)
	}
	if len(order) == 1 {
		apply(order[0])
		return
	}
	// Images are independent; checking them at once keeps a pod with several
	// uncached images within one deadline.
	var wg sync.WaitGroup
	for _, key := range order {
		wg.Go(func() { apply(key) })
	}
	wg.Wait()
}

func skipped(pod *corev1.Pod) bool {
	return strings.EqualFold(pod.Labels[SkipKey], "true") || strings.EqualFold(pod.Annotations[SkipKey], "true")
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

func (rv *review) podKeychain() authn.Keychain {
	if rv.h.o.PullSecrets == nil {
		return nil
	}
	names := make([]string, 0, len(rv.pod.Spec.ImagePullSecrets))
	for _, r := range rv.pod.Spec.ImagePullSecrets {
		names = append(names, r.Name)
	}
	sa := rv.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	ns := rv.pod.Namespace
	if ns == "" {
		ns = rv.req.namespace
	}
	return rv.h.o.PullSecrets.Keychain(ns, names, sa)
}
