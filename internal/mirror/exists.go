package mirror

import (
	"context"
	"fmt"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// existsTimeout bounds one existence check: a HEAD answers fast or the
// target is in trouble, and admissions wait on this.
const existsTimeout = 3 * time.Second

// Exists tells whether the target holds src's image, from the cache when it
// can. For a tag it checks the tag, for a digest the digest. A target that
// does not answer counts as "missing" for the short missing TTL, so a hung
// target delays one check, not every admission.
func (e *Engine) Exists(ctx context.Context, src reference.Named) (bool, error) {
	tgt, err := e.target.Mapper().ToTarget(src)
	if err != nil {
		return false, err
	}
	key := tgt.String()
	if present, ok := e.cache.get(key); ok {
		metrics.ExistsCache.WithLabelValues(cacheHit).Inc()
		return present, nil
	}
	metrics.ExistsCache.WithLabelValues(cacheMiss).Inc()
	ref, err := e.targetRef(tgt)
	if err != nil {
		return false, err
	}
	hctx, cancel := context.WithTimeout(ctx, existsTimeout)
	defer cancel()
	_, err = e.headTarget(hctx, ref)
	switch {
	case err == nil:
		e.cache.set(key, true)
		return true, nil
	case target.IsNotFound(err):
		e.cache.set(key, false)
		return false, nil
	default:
		if ctx.Err() == nil { // the target failed, not our caller
			metrics.TargetCheckErrors.Inc()
			e.cache.set(key, false)
		}
		return false, fmt.Errorf("check %s in target: %w", tgt, err)
	}
}

// Forget drops what the cache knows of src, so the next Exists asks the target.
func (e *Engine) Forget(src reference.Named) {
	if tgt, err := e.target.Mapper().ToTarget(src); err == nil {
		e.cache.forget(tgt.String())
	}
}

func (e *Engine) headTarget(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	opts, err := e.targetOptions(ctx)
	if err != nil {
		return nil, err
	}
	return remote.Head(ref, opts...)
}
