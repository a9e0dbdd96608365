package mirror

import (
	"context"
	"fmt"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// Referrer copy results, counted per artifact in
// k8s_image_swapper_referrer_copies_total.
const (
	refCopied  = "copied"
	refFailed  = "failed"
	refDropped = "dropped"
)

// cosignSuffixes are cosign's tag scheme: sha256-<hex>.sig, .att and .sbom
// in the repository of the image they describe.
var cosignSuffixes = []string{".sig", ".att", ".sbom"}

// referrerWorkers copy signatures beside the image workers: the artifacts
// are small, and the image copy never waits for them.
const referrerWorkers = 2

// subjects are the manifests of one copied image that signatures and
// referrers may point at: the image (or index) in the target, and the
// platform manifests of an index.
type subjects struct {
	root     v1.Hash
	index    bool      // root is an index
	children []v1.Hash // its manifests; nil with index set: read them from the target
}

// refJob copies what points at one image, after the image.
type refJob struct {
	req Request
	c   *clients // the image copy's
	sub subjects
}

// referrersAfter returns what run does once the image's waiters have their
// answer: queue the referrer copy for a referrer worker, or, in an engine
// that was not started (the copy command), copy them at once. The pending
// count is raised before the answer so that pendingReferrers sees it.
func (e *Engine) referrersAfter(ctx context.Context, req Request, c *clients, sub subjects, err error) func() {
	if err != nil || e.opts.SkipReferrers || sub.root == (v1.Hash{}) {
		return func() {}
	}
	job := refJob{req: req, c: c, sub: sub}
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if !started {
		return func() { e.copyReferrers(ctx, job) }
	}
	e.pending.Add(1)
	return func() {
		select {
		case e.refs <- job:
		default:
			e.pending.Done()
			metrics.ReferrerCopies.WithLabelValues(refDropped).Inc()
			e.log.Warn("referrer queue full, signatures not copied this time", "image", req.Source.String())
		}
	}
}

// referrerWorker copies referrers until ctx ends.
func (e *Engine) referrerWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-e.refs:
			jctx, cancel := context.WithTimeout(ctx, e.opts.CopyTimeout)
			e.copyReferrers(jctx, job)
			cancel()
			e.pending.Done()
		}
	}
}

// pendingReferrers waits until every queued referrer copy is done (tests).
func (e *Engine) pendingReferrers() { e.pending.Wait() }

// refCopy is one referrer copy's source and target repositories.
type refCopy struct {
	e                *Engine
	image            string // for logs
	src, tgt         name.Repository
	srcOpts, tgtOpts []remote.Option // reads
	tgtWrite         []remote.Option
}

// copyReferrers copies, for each subject, cosign's tags and the OCI
// referrers the source has and the target lacks or holds at another digest
// (a re-signed image). Failures are logged and counted, never returned: the
// image is already in the target.
func (e *Engine) copyReferrers(ctx context.Context, job refJob) {
	c, err := e.newRefCopy(ctx, job)
	if err == nil && job.sub.index && job.sub.children == nil {
		job.sub.children, err = c.targetChildren(job.sub.root)
	}
	if err != nil {
		metrics.ReferrerCopies.WithLabelValues(refFailed).Inc()
		e.log.Warn("signatures and referrers not copied", "image", c.image, "error", err)
		return
	}
	// The subjects at once, as many as blobs (each is a few round trips).
	var g errgroup.Group
	g.SetLimit(e.opts.Jobs)
	for _, d := range append([]v1.Hash{job.sub.root}, job.sub.children...) {
		g.Go(func() error {
			if ctx.Err() == nil {
				c.cosignTags(d)
				c.referrers(d)
			}
			return nil
		})
	}
	_ = g.Wait()
}

func (e *Engine) newRefCopy(ctx context.Context, job refJob) (*refCopy, error) {
	req := job.req
	c := &refCopy{e: e, image: req.Source.String()}
	srcRef, err := name.ParseReference(sourceString(req.Source), e.opts.Sources.NameOptions(reference.Domain(req.Source))...)
	if err != nil {
		return c, fmt.Errorf("source reference %s: %w", req.Source, err)
	}
	tgt, err := e.target.Mapper().ToTarget(req.Source)
	if err != nil {
		return c, err
	}
	// The image's own target repository: mapping and privacy rules apply
	// to its signatures as to the image.
	tgtRef, err := e.targetWriteRef(tgt)
	if err != nil {
		return c, err
	}
	c.src, c.tgt = srcRef.Context(), tgtRef.Context()
	c.srcOpts, c.tgtOpts, c.tgtWrite = job.c.sourceRead(ctx), job.c.targetRead(ctx), job.c.targetWrite(ctx)
	return c, nil
}

// targetChildren lists the manifests of an index the target holds (a
// present image: the target's copy is ours to read, the source's would
// count as a pull).
func (c *refCopy) targetChildren(root v1.Hash) ([]v1.Hash, error) {
	idx, err := remote.Index(c.tgt.Digest(root.String()), c.tgtOpts...)
	if err != nil {
		return nil, fmt.Errorf("read index %s in target: %w", root, err)
	}
	return indexChildren(idx)
}

// indexChildren are the image and index manifests of idx, less buildkit's
// attestation manifests (platform unknown/unknown), which nothing signs.
func indexChildren(idx v1.ImageIndex) ([]v1.Hash, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	out := []v1.Hash{}
	for _, m := range im.Manifests {
		if (m.MediaType.IsImage() || m.MediaType.IsIndex()) && (m.Platform == nil || m.Platform.OS != "unknown") {
			out = append(out, m.Digest)
		}
	}
	return out, nil
}

// cosignTags copies sha256-<hex>.sig, .att and .sbom of subject d when the
// source has them at a digest the target's tag does not point at.
func (c *refCopy) cosignTags(d v1.Hash) {
	for _, suffix := range cosignSuffixes {
		tag := d.Algorithm + "-" + d.Hex + suffix
		sd, err := remote.Head(c.src.Tag(tag), c.srcOpts...)
		if target.IsNotFound(err) {
			continue
		}
		if err != nil {
			c.failed(tag, fmt.Errorf("resolve %s at the source: %w", tag, err))
			continue
		}
		if td, err := remote.Head(c.tgt.Tag(tag), c.tgtOpts...); err == nil && td.Digest == sd.Digest {
			continue
		}
		// By digest at the source, so the tag cannot move under the copy.
		c.copyManifest(c.src.Digest(sd.Digest.String()), c.tgt.Tag(tag))
	}
}

// referrers copies the OCI referrers of subject d the target does not list.
// Writing one with its subject makes the target list it: through its
// referrers API, or go-containerregistry updates the fallback tag
// sha256-<hex> on a registry without one.
func (c *refCopy) referrers(d v1.Hash) {
	want, err := listReferrers(c.src.Digest(d.String()), c.srcOpts)
	if err != nil {
		c.failed(d.String(), fmt.Errorf("list referrers at the source: %w", err))
		return
	}
	if len(want) == 0 {
		return
	}
	have, err := listReferrers(c.tgt.Digest(d.String()), c.tgtOpts)
	if err != nil {
		c.failed(d.String(), fmt.Errorf("list referrers in the target: %w", err))
		return
	}
	listed := map[v1.Hash]bool{}
	for _, r := range have {
		listed[r.Digest] = true
	}
	for _, r := range want {
		if !listed[r.Digest] {
			c.copyManifest(c.src.Digest(r.Digest.String()), c.tgt.Digest(r.Digest.String()))
		}
	}
}

// listReferrers asks the referrers API, and, where the registry has none,
// reads the fallback tag sha256-<hex> after a HEAD: a missing tag (the
// usual answer) then costs no manifest GET, which Docker Hub would count
// as a pull. An error of the API is dropped when the fallback answers: a
// registry without the API answers it with an error. opts are a read's
// (clients.sourceRead, targetRead), whose puller has the library's own
// fallback off.
func listReferrers(d name.Digest, opts []remote.Option) ([]v1.Descriptor, error) {
	if idx, err := remote.Referrers(d, opts...); err == nil {
		return manifests(idx)
	}
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return nil, err
	}
	tag := d.Context().Tag(h.Algorithm + "-" + h.Hex)
	if _, err := remote.Head(tag, opts...); target.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", tag, err)
	}
	idx, err := remote.Index(tag, opts...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tag, err)
	}
	return manifests(idx)
}

func manifests(idx v1.ImageIndex) ([]v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	return im.Manifests, nil
}

// copyManifest copies one artifact (an image or index manifest and its
// blobs) from src to dst, its manifest byte for byte.
func (c *refCopy) copyManifest(src name.Reference, dst name.Reference) {
	if err := c.write(src, dst); err != nil {
		c.failed(src.Identifier(), err)
		return
	}
	metrics.ReferrerCopies.WithLabelValues(refCopied).Inc()
	c.e.log.Info("copied signature or referrer", "image", c.image, "artifact", src.String(), "target", dst.String())
}

func (c *refCopy) write(src, dst name.Reference) error {
	desc, err := remote.Get(src, c.srcOpts...)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", src, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return fmt.Errorf("read index %s: %w", src, err)
		}
		if err := remote.WriteIndex(dst, idx, c.tgtWrite...); err != nil {
			return fmt.Errorf("write %s to %s: %w", src, dst, err)
		}
		return nil
	}
	img, err := desc.Image()
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	if err := remote.Write(dst, img, c.tgtWrite...); err != nil {
		return fmt.Errorf("write %s to %s: %w", src, dst, err)
	}
	return nil
}

func (c *refCopy) failed(what string, err error) {
	metrics.ReferrerCopies.WithLabelValues(refFailed).Inc()
	c.e.log.Warn("signature or referrer not copied", "image", c.image, "artifact", what, "error", err)
}
