package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

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
