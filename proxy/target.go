package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// Every request to the target is made here.

// targetManifest asks the target for pl's manifest ref and serves only what
// it can trust: a body that matches its digest, and, in a mirror repository
// of a store that keeps a tag ledger (the local target), a tag only at the
// digest a copy wrote. Anything else is "not in the target", so the source
// serves instead (or containerd goes on to the origin): a tag planted in
// the store is never what a node pulls. Blobs are not re-hashed here: they
// are content-addressed, checked when copied in and by every client.
func (p *Proxy) targetManifest(ctx context.Context, method string, pl plan, ref string) (*http.Response, error) {
	resp, err := p.target.Do(ctx, method, registry.Path{Repo: pl.targetRepo, Kind: registry.Manifests, Ref: ref}, upstream.AcceptManifests())
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err // a redirect passes on
	}
	claimed, _ := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	want := claimed
	if d, err := digest.Parse(ref); err == nil {
		if claimed != "" && claimed != d {
			return nil, p.untrusted(resp, "digest_mismatch", pl, ref, fmt.Errorf("target %s@%s claims digest %s: %w", pl.targetRepo, ref, claimed, fetch.ErrDigestMismatch))
		}
		want = d
	} else if p.ledger != nil && imageref.IsMirrorPath(pl.targetRepo) {
		if wrote, ok := p.ledger.CopiedTag(pl.targetRepo, ref); !ok || wrote != claimed {
			return nil, p.untrusted(resp, "tag_not_copied", pl, ref, &upstream.Error{Role: upstream.Target, Registry: p.mapper.Host,
				Status: http.StatusNotFound, Body: fmt.Sprintf("tag %s:%s at %s was not written by a copy", pl.targetRepo, ref, claimed)})
		}
	}
	if method == http.MethodHead {
		return resp, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, fetch.MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s:%s from the target: %w", pl.targetRepo, ref, err)
	}
	if len(body) > fetch.MaxManifest {
		return nil, fmt.Errorf("target manifest %s:%s is larger than %d bytes", pl.targetRepo, ref, fetch.MaxManifest)
	}
	if want == "" {
		want = digest.FromBytes(body)
		resp.Header.Set("Docker-Content-Digest", want.String())
	} else if want.Algorithm().FromBytes(body) != want {
		return nil, p.untrusted(nil, "digest_mismatch", pl, ref, fmt.Errorf("target manifest %s@%s: %w", pl.targetRepo, want, fetch.ErrDigestMismatch))
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}

// untrusted counts and logs a target answer that is not served, and returns err.
func (p *Proxy) untrusted(resp *http.Response, reason string, pl plan, ref string, err error) error {
	if resp != nil {
		resp.Body.Close()
	}
	metrics.ProxyUntrusted.WithLabelValues(reason).Inc()
	p.log.Warn("target content not served: it cannot be trusted", "reason", reason,
		"repository", pl.targetRepo, "ref", ref, "error", err)
	return err
}

// targetBlob asks the target for ex's blob in pl's repository, with the
// client's Range.
func (p *Proxy) targetBlob(ex *exchange, pl plan) (*http.Response, error) {
	var h http.Header
	if v := ex.r.Header.Get("Range"); v != "" {
		h = http.Header{"Range": {v}}
	}
	return p.target.Do(ex.r.Context(), ex.r.Method, registry.Path{Repo: pl.targetRepo, Kind: registry.Blobs, Ref: ex.call.Ref, Digest: ex.call.Digest}, h)
}

// fromTarget serves pl's content from the target when ask finds it there.
// done says the request is settled: served, or, with no source to fall back
// to, failed with err. Otherwise the source is to serve it.
func (p *Proxy) fromTarget(ex *exchange, pl plan, ask func() (*http.Response, error)) (done bool, err error) {
	if pl.targetRepo == "" {
		return false, nil
	}
	resp, err := ask()
	if err == nil {
		relay(ex, resp, fromTarget)
		return true, nil
	}
	if pl.src == nil {
		return true, err
	}
	p.targetTrouble(err, pl)
	return false, nil
}

// tryTarget serves a manifest by digest from the target if it has it.
func (p *Proxy) tryTarget(ex *exchange, pl plan, d digest.Digest) bool {
	resp, err := p.targetManifest(ex.r.Context(), ex.r.Method, pl, d.String())
	if err != nil {
		return false
	}
	relay(ex, resp, fromTarget)
	return true
}

// fromTargetOnly serves the request from the target if it has the content;
// it writes nothing and returns false when the target does not.
func (p *Proxy) fromTargetOnly(ex *exchange, pl plan) bool {
	var resp *http.Response
	var err error
	if ex.call.Kind == registry.Blobs {
		if p.serveBlobFile(ex, pl) {
			ex.use(pl)
			return true
		}
		resp, err = p.targetBlob(ex, pl)
	} else {
		resp, err = p.targetManifest(ex.r.Context(), ex.r.Method, pl, ex.call.Ref)
	}
	if err != nil {
		if !isNotFound(err) {
			p.targetTrouble(err, pl)
		}
		return false
	}
	ex.use(pl)
	relay(ex, resp, fromTarget)
	return true
}

// targetTrouble logs a target failure other than "not there": the source
// serves instead.
func (p *Proxy) targetTrouble(err error, pl plan) {
	if isNotFound(err) || errors.Is(err, context.Canceled) {
		return
	}
	p.log.Warn("target failed; serving from the source", "repository", pl.targetRepo, "error", err)
}
