package proxy

import (
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// tagCheckWait bounds how long a pull the target can serve waits for the
// source's answer about a tag.
const tagCheckWait = 3 * time.Second

// serveManifest serves a manifest by tag or digest per pl.
func (p *Proxy) serveManifest(ex *exchange, pl plan) error {
	if ex.call.Digest != "" {
		return p.manifestByDigest(ex, pl)
	}
	return p.manifestByTag(ex, pl)
}

// manifestByDigest: the target's copy if it has one, else the source's.
func (p *Proxy) manifestByDigest(ex *exchange, pl plan) error {
	ctx, d := ex.r.Context(), ex.call.Digest
	if done, err := p.fromTarget(ex, pl, func() (*http.Response, error) { return p.targetManifest(ctx, ex.r.Method, pl, d.String()) }); done {
		return err
	}
	s := *pl.src
	m, err := p.sources.Manifest(ctx, s, d)
	var job *mirror.Job
	if err == nil && m.Relay == "" {
		// A relay that serves the image copies it; from the source, we do.
		job = p.triggerCopy(s, "", d)
		if p.waitCopy(ctx, job) && p.tryTarget(ex, pl, d) {
			return nil
		}
	}
	if err != nil {
		return sourceError(ex, pl, err)
	}
	p.checkBlobs(pl, m.Descriptor.MediaType, m.Body, job)
	p.writeManifest(ex, m.Descriptor, m.Body, sourceFrom(pl, m.Relay))
	return nil
}

// manifestByTag asks the target and (at most once per tagTTL) the source
// at the same time. The target's copy is served when it is the source's
// current content, or when the source cannot say (availability beats
// freshness); a tag that moved at the source is served from there and
// copied again. A target reference's tag is the target's, unchecked.
func (p *Proxy) manifestByTag(ex *exchange, pl plan) error {
	ctx, tag := ex.r.Context(), ex.call.Ref
	type answer struct {
		d   fetch.Descriptor
		err error
	}
	var srcAnswer chan answer
	if pl.src != nil && !pl.fallback {
		srcAnswer = make(chan answer, 1)
		go func() {
			d, err := p.sources.ResolveTag(ctx, *pl.src, tag)
			srcAnswer <- answer{d, err}
		}()
	}
	var tResp *http.Response
	var tErr error = errNoTarget
	if pl.targetRepo != "" {
		tResp, tErr = p.targetManifest(ctx, ex.r.Method, pl, tag)
	}
	src := answer{err: errNoSource}
	if srcAnswer != nil {
		if tErr == nil {
			// The target has a copy: a slow source only delays the check,
			// which goes on and answers the next pull.
			timer := time.NewTimer(tagCheckWait)
			select {
			case src = <-srcAnswer:
			case <-timer.C:
				src.err = fmt.Errorf("source %s did not answer within %s", pl.src.Registry, tagCheckWait)
			}
			timer.Stop()
		} else {
			src = <-srcAnswer
		}
	}
	if tErr == nil {
		tDigest := digest.Digest(tResp.Header.Get("Docker-Content-Digest"))
		if srcAnswer == nil || src.err != nil || p.copies.sameContent(src.d.Digest, tDigest) {
			if src.err != nil && srcAnswer != nil {
				p.log.Info("source cannot say what the tag is now; serving the target's copy",
					"image", pl.src.String()+":"+tag, "error", src.err)
			}
			relay(ex, tResp, fromTarget)
			return nil
		}
		tResp.Body.Close()
		p.log.Info("tag moved at the source; serving the source's and copying again",
			"image", pl.src.String()+":"+tag, "source", src.d.Digest, "target", tDigest)
		p.forget(*pl.src, tag)
	} else if pl.src == nil {
		return tErr
	} else if tErr != errNoTarget {
		p.targetTrouble(tErr, pl)
	}
	s := *pl.src
	if srcAnswer == nil {
		// A target reference missing from the target: back to its source.
		src.d, src.err = p.sources.ResolveTag(ctx, s, tag)
		p.forget(s, tag)
	}
	if src.err != nil {
		return sourceError(ex, pl, src.err)
	}
	var job *mirror.Job
	if src.d.Relay == "" {
		// A relay that resolved the tag serves the image and copies it.
		job = p.triggerCopy(s, tag, src.d.Digest)
		if p.waitCopy(ctx, job) && p.tryTarget(ex, pl, src.d.Digest) {
			return nil
		}
	}
	if ex.r.Method == http.MethodHead {
		p.writeManifest(ex, src.d, nil, sourceFrom(pl, src.d.Relay))
		return nil
	}
	m, err := p.sources.Manifest(ctx, s, src.d.Digest)
	if err != nil {
		return sourceError(ex, pl, err)
	}
	p.checkBlobs(pl, m.Descriptor.MediaType, m.Body, job)
	p.writeManifest(ex, m.Descriptor, m.Body, sourceFrom(pl, m.Relay))
	return nil
}

func (p *Proxy) writeManifest(ex *exchange, d fetch.Descriptor, body []byte, from string) {
	fetch.SetContent(ex.w.Header(), d)
	ex.from = from
	ex.w.WriteHeader(http.StatusOK)
	if ex.r.Method == http.MethodGet {
		_, _ = ex.w.Write(body)
	}
}

// sourceFrom is where a miss was served from: the source (or, for a target
// reference, the fallback to it), or the relay that answered instead.
func sourceFrom(pl plan, relay string) string {
	switch {
	case relay != "":
		return relay
	case pl.fallback:
		return fromFallback
	}
	return fromSource
}

// Placeholders for "not asked".
var (
	errNoTarget = &upstream.Error{Role: upstream.Target, Status: http.StatusNotFound}
	errNoSource = &upstream.Error{Role: upstream.Source, Status: http.StatusNotFound}
)
