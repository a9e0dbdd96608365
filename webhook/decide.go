package webhook

import (
	"context"
	"time"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
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
