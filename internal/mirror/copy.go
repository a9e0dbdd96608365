package mirror

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
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
		metrics.ExistsCache.WithLabelValues("hit").Inc()
		return present, nil
	}
	metrics.ExistsCache.WithLabelValues("miss").Inc()
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

// targetRef is how a target reference is checked: a tag+digest reference
// by its digest, which decides.
func (e *Engine) targetRef(tgt reference.Named) (name.Reference, error) {
	s := tgt.String()
	if d := imageref.Digest(tgt); d != "" {
		s = tgt.Name() + "@" + d
	}
	return e.parseTarget(tgt, s)
}

// targetWriteRef is how it is written: by tag when there is one, so the tag
// exists in the target; a digest-only reference by digest.
func (e *Engine) targetWriteRef(tgt reference.Named) (name.Reference, error) {
	s := tgt.String()
	if t := imageref.Tag(tgt); t != "" {
		s = tgt.Name() + ":" + t
	}
	return e.parseTarget(tgt, s)
}

func (e *Engine) parseTarget(tgt reference.Named, s string) (name.Reference, error) {
	ref, err := name.ParseReference(s, e.target.NameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("target reference %s: %w", tgt, err)
	}
	return ref, nil
}

func (e *Engine) targetOptions(ctx context.Context) ([]remote.Option, error) {
	a, err := e.target.Authenticator(ctx)
	if err != nil {
		return nil, fmt.Errorf("authenticate to target %s: %w", e.target.Mapper().Base(), err)
	}
	return e.remoteOptions(ctx, remote.WithAuth(a), remote.WithTransport(e.tgtRT)), nil
}

// sourceOptions: the config's credentials for a registry first, then the
// caller's (a pod's pull secrets), anonymous otherwise.
func (e *Engine) sourceOptions(ctx context.Context, req Request) []remote.Option {
	chains := []authn.Keychain{e.opts.Sources}
	if e.opts.SourceKeychain != nil {
		chains = append(chains, e.opts.SourceKeychain)
	}
	if req.Keychain != nil {
		chains = append(chains, req.Keychain)
	}
	return e.remoteOptions(ctx, remote.WithAuthFromKeychain(authn.NewMultiKeychain(chains...)),
		remote.WithTransport(e.srcRT))
}

// remoteOptions leave retrying to retryTransport, which honours Retry-After.
func (e *Engine) remoteOptions(ctx context.Context, extra ...remote.Option) []remote.Option {
	return append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithJobs(e.opts.Jobs),
		remote.WithRetryStatusCodes(),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}, extra...)
}

func (e *Engine) headTarget(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	opts, err := e.targetOptions(ctx)
	if err != nil {
		return nil, err
	}
	return remote.Head(ref, opts...)
}

// copy mirrors one image. Blobs the target has are skipped by the library;
// an image the target already has at the same digest costs one source HEAD
// and one target HEAD.
func (e *Engine) copy(ctx context.Context, req Request) (Result, error) {
	src := req.Source
	tgt, err := e.target.Mapper().ToTarget(src)
	if err != nil {
		return Result{}, err
	}
	res := Result{Source: src, Target: tgt}
	srcRef, err := name.ParseReference(sourceString(src), e.opts.Sources.NameOptions(reference.Domain(src))...)
	if err != nil {
		return res, fmt.Errorf("source reference %s: %w", src, err)
	}
	tgtRef, err := e.targetWriteRef(tgt)
	if err != nil {
		return res, err
	}
	srcOpts := e.sourceOptions(ctx, req)
	tgtOpts, err := e.targetOptions(ctx)
	if err != nil {
		return res, err
	}

	// Cheap path: is the exact content there already?
	want, mediaType, err := e.sourceDigest(srcRef, srcOpts)
	if err != nil {
		return res, err
	}
	filter := e.filters(src, mediaType)
	if !filter {
		if d, err := remote.Head(tgtRef, tgtOpts...); err == nil && d.Digest == want {
			res.Digest, res.Present = want, true
			e.cache.set(tgt.String(), true)
			return res, nil
		}
	}

	if err := e.target.EnsureRepository(ctx, tgtRef.Context().RepositoryStr()); err != nil {
		return res, fmt.Errorf("ensure repository %s: %w", tgtRef.Context().RepositoryStr(), err)
	}
	desc, err := remote.Get(srcRef, srcOpts...)
	if err != nil {
		return res, fmt.Errorf("fetch %s: %w", src, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return res, fmt.Errorf("read index %s: %w", src, err)
		}
		if filter {
			if idx, err = e.filterIndex(idx); err != nil {
				return res, fmt.Errorf("%s: %w", src, err)
			}
		}
		d, err := idx.Digest()
		if err != nil {
			return res, fmt.Errorf("digest of %s: %w", src, err)
		}
		res.Digest = d
		if filter {
			if h, err := remote.Head(tgtRef, tgtOpts...); err == nil && h.Digest == d {
				res.Present = true
				e.cache.set(tgt.String(), true)
				return res, nil
			}
		}
		repo := tgtRef.Context()
		if err := remote.WriteIndex(tgtRef, mountIndex{index: idx, homes: &e.homes, repo: repo}, tgtOpts...); err != nil {
			return res, fmt.Errorf("write %s to %s: %w", src, tgtRef, err)
		}
		e.homes.rememberIndex(repo, idx)
	} else {
		img, err := desc.Image()
		if err != nil {
			return res, fmt.Errorf("read image %s: %w", src, err)
		}
		res.Digest = desc.Digest
		repo := tgtRef.Context()
		if err := remote.Write(tgtRef, mountImage{Image: img, homes: &e.homes, repo: repo}, tgtOpts...); err != nil {
			return res, fmt.Errorf("write %s to %s: %w", src, tgtRef, err)
		}
		e.homes.remember(repo, img)
	}
	metrics.ManifestsWritten.Inc()
	e.cache.set(tgt.String(), true)
	return res, nil
}

// sourceString drops the tag of a tag+digest reference: the digest decides.
func sourceString(src reference.Named) string {
	if d := imageref.Digest(src); d != "" {
		return src.Name() + "@" + d
	}
	return src.String()
}

// sourceDigest resolves the source with a HEAD (Docker Hub does not count
// HEADs against its pull limit); a pinned digest needs no request.
func (e *Engine) sourceDigest(ref name.Reference, opts []remote.Option) (v1.Hash, types.MediaType, error) {
	if d, ok := ref.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		return h, "", err
	}
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return v1.Hash{}, "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	return desc.Digest, desc.MediaType, nil
}

// filters tells whether source.platforms applies: to indexes, and not to
// a digest-pinned reference, whose digest must exist in the target.
func (e *Engine) filters(src reference.Named, mt types.MediaType) bool {
	return len(e.opts.Platforms) > 0 && imageref.Digest(src) == "" && mt.IsIndex()
}

func (e *Engine) matches(p *v1.Platform) bool {
	if p == nil {
		return false
	}
	for _, want := range e.opts.Platforms {
		if p.OS == want.OS && p.Architecture == want.Architecture &&
			(want.Variant == "" || p.Variant == want.Variant) {
			return true
		}
	}
	return false
}

// filterIndex keeps the wanted platforms, and entries with no platform
// (attestations and signatures point at the kept images).
func (e *Engine) filterIndex(idx v1.ImageIndex) (v1.ImageIndex, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	kept := 0
	for _, m := range im.Manifests {
		if e.matches(m.Platform) {
			kept++
		}
	}
	if kept == 0 {
		return nil, fmt.Errorf("none of its platforms is among source.platforms %s", platformsString(e.opts.Platforms))
	}
	return mutate.RemoveManifests(idx, func(d v1.Descriptor) bool {
		return d.Platform != nil && !e.matches(d.Platform) && d.Platform.OS != "unknown"
	}), nil
}

func platformsString(ps []v1.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
