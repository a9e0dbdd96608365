package proxy

import (
	"bytes"
	"context"
	"net/http"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// When an image's manifest is served from the source, the target is asked
// about all its blobs at once, in the background. The pull that follows
// then goes to the source straight away for each blob the target lacks,
// instead of waiting for the target's "not here" one blob at a time (in a
// cold pull of 48 layers of 64 KiB, those answers took a quarter of the
// pull). An answer holds while the image's copy runs, for presenceTTL at
// most; a blob the target has is still fetched from the target.
const (
	presenceTTL  = 30 * time.Second
	presenceJobs = 8               // target HEADs at once
	presenceWait = 1 * time.Second // longest a blob waits for its check
)

type presence struct {
	checks *ttlcache.Cache[string, *blobCheck] // by target repository@digest
	sem    chan struct{}
}

type blobCheck struct {
	done    chan struct{}
	missing bool        // the target answered 404; set before done closes
	job     *mirror.Job // the copy bringing the image; nil when none
}

func checkKey(repo string, d digest.Digest) string { return repo + "@" + d.String() }

func newPresence() *presence {
	return &presence{checks: ttlcache.New[string, *blobCheck](20_000), sem: make(chan struct{}, presenceJobs)}
}

// checkBlobs starts the target checks for the config and layers of body,
// an image manifest served from the source for pl; job is its copy. A local
// target needs none: its blob files answer at once.
func (p *Proxy) checkBlobs(pl plan, mediaType string, body []byte, job *mirror.Job) {
	mt := types.MediaType(mediaType)
	if p.files != nil || pl.targetRepo == "" || len(body) == 0 || !mt.IsImage() {
		return
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return
	}
	for _, desc := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		d, err := digest.Parse(desc.Digest.String())
		if err != nil {
			continue
		}
		c := &blobCheck{done: make(chan struct{}), job: job}
		if p.presence.checks.Add(checkKey(pl.targetRepo, d), c, presenceTTL) {
			go p.checkBlob(pl.targetRepo, d, c)
		}
	}
}

func (p *Proxy) checkBlob(repo string, d digest.Digest, c *blobCheck) {
	defer close(c.done)
	p.presence.sem <- struct{}{}
	defer func() { <-p.presence.sem }()
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.UpstreamTimeout)
	defer cancel()
	resp, err := p.target.Do(ctx, http.MethodHead, registry.Path{Repo: repo, Kind: registry.Blobs, Ref: d.String(), Digest: d}, nil)
	if err == nil {
		resp.Body.Close()
	}
	c.missing = isNotFound(err)
}

// targetLacks tells whether a check found blob d missing from the target
// repository while the copy that brings it is still running. It waits a
// little for a check in flight; no check, or no answer yet, is "ask the
// target".
func (p *Proxy) targetLacks(ctx context.Context, repo string, d digest.Digest) bool {
	c, ok := p.presence.checks.Get(checkKey(repo, d))
	if !ok {
		return false
	}
	timer := time.NewTimer(presenceWait)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
	return c.missing && (c.job == nil || !finished(c.job))
}
