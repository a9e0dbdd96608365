package webhook

import (
	"context"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
)

// privateDecision tells whether the pod may be given src's copy: "" when
// it may, else why it keeps the original. The node pulls the copy with its
// own credentials, so a copy made with one pod's pull secrets would reach
// pods with no rights to the source; keeping the original leaves the kubelet
// to check those rights. When the source cannot be asked and gave no answer
// in the last day (Access keeps them), the original stays too (kept_private,
// with a warning): an outage must not open a private image to everyone.
func (rv *review) privateDecision(ctx context.Context, src reference.Named) string {
	o := rv.h.o
	if o.PrivateImages == policy.PrivateImagesSwap {
		return ""
	}
	public, err := o.Access.Public(ctx, src)
	if err != nil {
		rv.log.Warn("image left unchanged: cannot tell whether its source needs credentials", "image", src.String(), "error", err)
		return decisionKeptPrivate
	}
	if public {
		return ""
	}
	kc := rv.keychain()
	if kc == nil {
		rv.log.Info("image left unchanged: its source needs credentials and the pod has no pull secrets we can read",
			"image", src.String())
		return decisionKeptPrivate
	}
	ok, err := o.Access.Readable(ctx, src, kc)
	switch {
	case err != nil:
		rv.log.Warn("image left unchanged: cannot tell whether the pod's pull secrets read it at its source",
			"image", src.String(), "error", err)
		return decisionKeptPrivate
	case !ok:
		rv.log.Info("image left unchanged: its source needs credentials the pod's pull secrets do not hold",
			"image", src.String())
		return decisionKeptPrivate
	}
	return ""
}
