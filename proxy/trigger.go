package proxy

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// recentWindow is how long a repository's copy covers the manifests pulled
// by digest after it (an index's images): they are not copied on their own.
const recentWindow = 2 * time.Minute

// copies remembers the copies the proxy asked for.
type copies struct {
	mu     sync.Mutex                          // held from asking to recording, so each copy counts once
	recent *ttlcache.Cache[string, recentCopy] // by source repository
	// copied maps a source digest to the digest its copy has in the target,
	// which differs when source.platforms filtered an index.
	copied *ttlcache.Cache[digest.Digest, digest.Digest]
}

type recentCopy struct {
	job *mirror.Job
	at  time.Time
}

func newCopies() *copies {
	return &copies{recent: ttlcache.New[string, recentCopy](10_000), copied: ttlcache.New[digest.Digest, digest.Digest](10_000)}
}

// sameContent tells whether the target's digest for a tag is the copy of
// the source's.
func (c *copies) sameContent(src, tgt digest.Digest) bool {
	if src == tgt {
		return true
	}
	copied, ok := c.copied.Get(src)
	return ok && copied == tgt
}

// triggerCopy asks the engine to mirror s's image: by tag, pinned to the
// digest just served (so the engine reads the manifest from the proxy's
// cache and writes the tag), or by digest alone. A digest pulled just after
// its repository's copy began is left to that copy. It returns the job,
// nil when there is none.
func (p *Proxy) triggerCopy(s fetch.Source, tag string, d digest.Digest) *mirror.Job {
	if p.mirror == nil {
		return nil
	}
	ref, err := s.Named()
	if err == nil && tag != "" {
		ref, err = reference.WithTag(ref, tag)
	}
	if err == nil {
		ref, err = reference.WithDigest(ref, d)
	}
	if err != nil {
		p.log.Warn("cannot copy", "image", s.String(), "error", err)
		return nil
	}
	key := s.String()
	now := time.Now()
	p.copies.mu.Lock()
	if rc, ok := p.copies.recent.Get(key); ok && tag == "" && (now.Sub(rc.at) < recentWindow || !finished(rc.job)) {
		p.copies.mu.Unlock()
		return rc.job
	}
	p.copies.mu.Unlock()

	job, err := p.mirror.Submit(mirror.Request{Source: ref})
	if err != nil {
		metrics.ProxyCopiesTriggered.WithLabelValues(s.Registry, "dropped").Inc()
		p.log.Warn("copy not queued", "image", ref.String(), "error", err)
		return nil
	}

	p.copies.mu.Lock()
	defer p.copies.mu.Unlock()
	// The engine shares a copy in flight: count and watch each one once.
	if rc, ok := p.copies.recent.Get(key); !ok || rc.job != job {
		metrics.ProxyCopiesTriggered.WithLabelValues(s.Registry, "queued").Inc()
		p.log.Info("copy triggered", "image", ref.String())
		go p.watch(job, d)
	}
	p.copies.recent.Set(key, recentCopy{job: job, at: now}, 0)
	return job
}

// watch records the target digest a copy produced.
func (p *Proxy) watch(job *mirror.Job, src digest.Digest) {
	res, err := job.Wait(context.Background())
	if err != nil {
		return
	}
	p.copies.copied.Set(src, digest.Digest(res.Digest.String()), 0)
}

func finished(j *mirror.Job) bool {
	select {
	case <-j.Done():
		return true
	default:
		return false
	}
}

// waitCopy is onMiss: wait. It tells whether job finished well within the
// wait timeout, so that the target can serve.
func (p *Proxy) waitCopy(ctx context.Context, job *mirror.Job) bool {
	if p.opts.OnMiss != policy.OnMissWait || job == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.WaitTimeout)
	defer cancel()
	_, err := job.Wait(ctx)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		p.log.Info("copy failed while a pull waited; serving the source", "error", err)
	}
	return err == nil
}

// forget makes the engine ask the target again about s's image.
func (p *Proxy) forget(s fetch.Source, tag string) {
	if p.mirror == nil {
		return
	}
	ref, err := s.Named()
	if err == nil && tag != "" {
		ref, err = reference.WithTag(ref, tag)
	}
	if err == nil {
		p.mirror.Forget(ref)
	}
}
