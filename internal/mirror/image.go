package mirror

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

// copy mirrors one image. Blobs the target has are skipped by the library;
// an image the target already has at the same digest costs one source HEAD
// and one target HEAD. It also returns the manifests whose signatures and
// referrers follow the image.
func (e *Engine) copy(ctx context.Context, req Request, c *clients) (Result, subjects, error) {
	src := req.Source
	tgt, err := e.target.Mapper().ToTarget(src)
	if err != nil {
		return Result{}, subjects{}, err
	}
	res := Result{Source: src, Target: tgt}
	var sub subjects
	srcRef, err := name.ParseReference(sourceString(src), e.opts.Sources.NameOptions(reference.Domain(src))...)
	if err != nil {
		return res, subjects{}, fmt.Errorf("source reference %s: %w", src, err)
	}
	tgtRef, err := e.targetWriteRef(tgt)
	if err != nil {
		return res, subjects{}, err
	}
	srcOpts, tgtHead := c.sourceRead(ctx), c.targetRead(ctx)

	// Cheap path: is the exact content there already?
	want, mediaType, err := e.sourceDigest(srcRef, srcOpts)
	if err != nil {
		return res, subjects{}, err
	}
	filter := e.filters(src, mediaType)
	if !filter {
		if d, err := remote.Head(tgtRef, tgtHead...); err == nil && d.Digest == want {
			res.Digest, res.Present = want, true
			e.cache.set(tgt.String(), true)
			return res, subjects{root: want, index: d.MediaType.IsIndex()}, nil
		}
	}

	if err := e.target.EnsureRepository(ctx, tgtRef.Context().RepositoryStr()); err != nil {
		return res, subjects{}, fmt.Errorf("ensure repository %s: %w", tgtRef.Context().RepositoryStr(), err)
	}
	desc, err := remote.Get(srcRef, srcOpts...)
	if err != nil {
		return res, subjects{}, fmt.Errorf("fetch %s: %w", src, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return res, subjects{}, fmt.Errorf("read index %s: %w", src, err)
		}
		if filter {
			if idx, err = e.filterIndex(idx); err != nil {
				return res, subjects{}, fmt.Errorf("%s: %w", src, err)
			}
		}
		d, err := idx.Digest()
		if err != nil {
			return res, subjects{}, fmt.Errorf("digest of %s: %w", src, err)
		}
		res.Digest = d
		sub = subjects{root: d, index: true}
		if sub.children, err = indexChildren(idx); err != nil {
			return res, subjects{}, fmt.Errorf("read index %s: %w", src, err)
		}
		if filter {
			if h, err := remote.Head(tgtRef, tgtHead...); err == nil && h.Digest == d {
				res.Present = true
				e.cache.set(tgt.String(), true)
				return res, sub, nil
			}
		}
		repo := tgtRef.Context()
		opts, wait := withProgress(req, c.targetWrite(ctx))
		err = remote.WriteIndex(tgtRef, mountIndex{index: idx, homes: &e.homes, repo: repo, open: e.sourceBlobs(ctx, srcRef)}, opts...)
		wait()
		if err != nil {
			return res, subjects{}, fmt.Errorf("write %s to %s: %w", src, tgtRef, err)
		}
		e.homes.rememberIndex(repo, idx)
	} else {
		img, err := desc.Image()
		if err != nil {
			return res, subjects{}, fmt.Errorf("read image %s: %w", src, err)
		}
		res.Digest = desc.Digest
		sub = subjects{root: desc.Digest}
		repo := tgtRef.Context()
		opts, wait := withProgress(req, c.targetWrite(ctx))
		err = remote.Write(tgtRef, mountImage{Image: img, homes: &e.homes, repo: repo, open: e.sourceBlobs(ctx, srcRef)}, opts...)
		wait()
		if err != nil {
			return res, subjects{}, fmt.Errorf("write %s to %s: %w", src, tgtRef, err)
		}
		e.homes.remember(repo, img)
	}
	metrics.ManifestsWritten.Inc()
	e.cache.set(tgt.String(), true)
	return res, sub, nil
}

// sourceBlobs opens layers of src with Options.SourceBlobs, nil without.
func (e *Engine) sourceBlobs(ctx context.Context, src name.Reference) opener {
	if e.opts.SourceBlobs == nil {
		return nil
	}
	return func(d v1.Hash) (io.ReadCloser, error) { return e.opts.SourceBlobs(ctx, src.Context(), d) }
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

// withProgress adds req.Progress to the options of one write; wait returns
// once every update was passed on (the library closes the channel when the
// write returns).
func withProgress(req Request, opts []remote.Option) ([]remote.Option, func()) {
	if req.Progress == nil {
		return opts, func() {}
	}
	ch := make(chan v1.Update, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range ch {
			if u.Error == nil {
				req.Progress(u.Complete, u.Total)
			}
		}
	}()
	return append(slices.Clip(opts), remote.WithProgress(ch)), func() { <-done }
}
