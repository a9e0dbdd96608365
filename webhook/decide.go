package webhook

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
)

// Image decisions, counted in k8s_image_swapper_image_decisions_total.
const (
	decisionSwapped       = "swapped"
	decisionKeptMissing   = "kept_missing"
	decisionKeptPrivate   = "kept_private"
	decisionFiltered      = "filtered"
	decisionAlreadyTarget = "already_target"
	decisionDryRun        = "dry_run"
	decisionSkipped       = "skipped"
	decisionInvalid       = "invalid"
	decisionError         = "error"
)

// backgroundCheck bounds the existence check and queueing that "always" +
// "delayed" do after the answer is sent.
const backgroundCheck = 30 * time.Second

// decideImage applies imageSwapPolicy and imageCopyPolicy to one source
// image and returns the decision and, for a swap, the target reference.
// pullAlways (a container with imagePullPolicy Always) re-copies a tag the
// target has when it is due: the original re-copied on every admission,
// which kept mutable tags fresh; this keeps the freshness, at one source
// resolve per tag and tagTTL (the copy skips an image the target has).
func (rv *review) decideImage(ctx context.Context, src reference.Named, pullAlways bool) (string, string) {
	o := rv.h.o
	tgt, err := o.Mapper.ToTarget(src)
	if err != nil {
		rv.log.Warn("image left unchanged: no target name for it", "image", src.String(), "error", err)
		return decisionError, ""
	}
	target := tgt.String()
	// No copies in a dry run of ours or of the API server's
	// (kubectl --dry-run=server); the webhook declares sideEffects NoneOnDryRun.
	noCopy := o.DryRun || rv.req.dryRun
	swap := func() (string, string) {
		if d := rv.privateDecision(ctx, src); d != "" {
			if o.DryRun {
				rv.log.Info("dry run: would keep", "image", src.String(), "reason", d)
				return decisionDryRun, ""
			}
			return d, ""
		}
		if o.DryRun {
			rv.log.Info("dry run: would swap", "image", src.String(), "target", target)
			return decisionDryRun, ""
		}
		return decisionSwapped, target
	}
	keep := func() (string, string) {
		if o.DryRun {
			rv.log.Info("dry run: would keep", "image", src.String(), "reason", "missing in target")
			return decisionDryRun, ""
		}
		return decisionKeptMissing, ""
	}

	refresh := pullAlways && !noCopy && o.CopyPolicy != policy.CopyNone && imageref.Digest(src) == "" &&
		rv.h.refreshed.due(src.String())
	if o.SwapPolicy == policy.SwapAlways {
		switch {
		case refresh:
			rv.refresh(ctx, src)
		case !noCopy:
			rv.ensureCopied(ctx, src)
		}
		return swap()
	}

	// exists: swap only to an image the target has.
	present, err := o.Mirror.Exists(ctx, src)
	if err != nil {
		rv.log.Warn("cannot tell whether the target has the image; treating it as missing", "image", src.String(), "error", err)
	}
	if present {
		// Present is enough, but for imagePullPolicy Always once per tagTTL.
		if refresh {
			rv.refresh(ctx, src)
		}
		return swap()
	}
	if noCopy || o.CopyPolicy == policy.CopyNone {
		return keep()
	}
	req := mirror.Request{Source: src, Keychain: rv.keychain()}
	if o.CopyPolicy == policy.CopyDelayed {
		if err := o.Mirror.Mirror(ctx, policy.CopyDelayed, 0, req); err != nil {
			rv.log.Warn("copy not queued", "image", src.String(), "error", err)
		}
		return keep()
	}
	// immediate or force: wait for the copy, within the request's budget.
	if err := o.Mirror.Mirror(ctx, o.CopyPolicy, o.CopyDeadline, req); err != nil {
		rv.log.Warn("image left unchanged: copy did not finish in time", "image", src.String(),
			"policy", o.CopyPolicy, "error", err)
		return keep()
	}
	return swap()
}

// refresh copies src again with the copy policy: the copy resolves the tag
// at the source and writes only when its digest moved. immediate and force
// wait for it within the deadline; a failure leaves the target's copy.
func (rv *review) refresh(ctx context.Context, src reference.Named) {
	o := rv.h.o
	req := mirror.Request{Source: src, Keychain: rv.keychain()}
	deadline := time.Duration(0)
	if o.CopyPolicy != policy.CopyDelayed {
		deadline = o.CopyDeadline
	}
	rv.log.Debug("imagePullPolicy Always: checking the tag at the source", "image", src.String(), "policy", o.CopyPolicy)
	if err := o.Mirror.Mirror(ctx, o.CopyPolicy, deadline, req); err != nil {
		rv.log.Warn("imagePullPolicy Always: tag not re-checked", "image", src.String(), "policy", o.CopyPolicy, "error", err)
	}
}

// ensureCopied starts the copy "always" needs, unless the target has the
// image. With "delayed" the check runs after the answer is sent.
func (rv *review) ensureCopied(ctx context.Context, src reference.Named) {
	o := rv.h.o
	switch o.CopyPolicy {
	case policy.CopyNone:
		return
	case policy.CopyDelayed:
		kc := rv.keychain()
		log := rv.log
		select {
		case rv.h.background <- struct{}{}:
			go func() {
				defer func() { <-rv.h.background }()
				bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backgroundCheck)
				defer cancel()
				if present, err := o.Mirror.Exists(bctx, src); err == nil && present {
					return
				}
				if err := o.Mirror.Mirror(bctx, policy.CopyDelayed, 0, mirror.Request{Source: src, Keychain: kc}); err != nil {
					log.Warn("copy not queued", "image", src.String(), "error", err)
				}
			}()
		default:
			// Too many checks in flight: queue the copy, which itself
			// skips an image the target already has.
			if err := o.Mirror.Mirror(ctx, policy.CopyDelayed, 0, mirror.Request{Source: src, Keychain: kc}); err != nil {
				log.Warn("copy not queued", "image", src.String(), "error", err)
			}
		}
	default:
		if present, err := o.Mirror.Exists(ctx, src); err == nil && present {
			return
		}
		req := mirror.Request{Source: src, Keychain: rv.keychain()}
		if err := o.Mirror.Mirror(ctx, o.CopyPolicy, o.CopyDeadline, req); err != nil {
			rv.log.Warn("copy did not finish in time; swapped anyway (imageSwapPolicy always)", "image", src.String(),
				"policy", o.CopyPolicy, "error", err)
		}
	}
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
