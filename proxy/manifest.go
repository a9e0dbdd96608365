package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
)

// tagCheckWait bounds how long a pull the target can serve waits for the
// source's answer about a tag.
const tagCheckWait = 3 * time.Second

// serveManifest serves a manifest by tag or digest per pl.
func (p *Proxy) serveManifest(ex *exchange, pl plan) {
	if ex.call.dgst != "" {
		p.manifestByDigest(ex, pl)
		return
	}
	p.manifestByTag(ex, pl)
}

// manifestByDigest: the target's copy if it has one, else the source's.
func (p *Proxy) manifestByDigest(ex *exchange, pl plan) {
	ctx, d := ex.r.Context(), ex.call.dgst
	if pl.targetRepo != "" {
		resp, err := p.targetManifest(ctx, ex.r.Method, pl, d.String())
		if err == nil {
			relay(ex, resp, fromTarget)
			return
		}
		if pl.src == nil {
			writeError(ex.w, ex.r, asHTTPError(err, codeManifestUnknown))
			return
		}
		p.targetTrouble(err, pl)
	}
	s := *pl.src
	job := p.triggerCopy(s, "", d)
	if p.waitCopy(ctx, job) && p.tryTarget(ex, pl, d) {
		return
	}
	m, err := p.fetchManifest(ctx, s, d)
	if err != nil {
		sourceError(ex, pl, err, codeManifestUnknown)
		return
	}
	p.writeManifest(ex, m.desc, m.body, sourceFrom(pl))
}

// manifestByTag asks the target and (at most once per tagTTL) the source
// at the same time. The target's copy is served when it is the source's
// current content, or when the source cannot say (availability beats
// freshness); a tag that moved at the source is served from there and
// copied again. A target reference's tag is the target's, unchecked.
func (p *Proxy) manifestByTag(ex *exchange, pl plan) {
	ctx, tag := ex.r.Context(), ex.call.ref
	type answer struct {
		d   desc
		err error
	}
	var srcAnswer chan answer
	if pl.src != nil && !pl.fallback {
		srcAnswer = make(chan answer, 1)
		go func() {
			d, err := p.resolveTag(ctx, *pl.src, tag)
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
				src.err = fmt.Errorf("source %s did not answer within %s", pl.src.registry, tagCheckWait)
			}
			timer.Stop()
		} else {
			src = <-srcAnswer
		}
	}
	if tErr == nil {
		tDigest := digest.Digest(tResp.Header.Get("Docker-Content-Digest"))
		if srcAnswer == nil || src.err != nil || p.copies.sameContent(src.d.digest, tDigest) {
			if src.err != nil && srcAnswer != nil {
				p.log.Info("source cannot say what the tag is now; serving the target's copy",
					"image", pl.src.String()+":"+tag, "error", src.err)
			}
			relay(ex, tResp, fromTarget)
			return
		}
		tResp.Body.Close()
		p.log.Info("tag moved at the source; serving the source's and copying again",
			"image", pl.src.String()+":"+tag, "source", src.d.digest, "target", tDigest)
		p.forget(*pl.src, tag)
	} else if pl.src == nil {
		writeError(ex.w, ex.r, asHTTPError(tErr, codeManifestUnknown))
		return
	} else if tErr != errNoTarget {
		p.targetTrouble(tErr, pl)
	}
	s := *pl.src
	if srcAnswer == nil {
		// A target reference missing from the target: back to its source.
		src.d, src.err = p.resolveTag(ctx, s, tag)
		p.forget(s, tag)
	}
	if src.err != nil {
		sourceError(ex, pl, src.err, codeManifestUnknown)
		return
	}
	job := p.triggerCopy(s, tag, src.d.digest)
	if p.waitCopy(ctx, job) && p.tryTarget(ex, pl, src.d.digest) {
		return
	}
	if ex.r.Method == http.MethodHead {
		p.writeManifest(ex, src.d, nil, sourceFrom(pl))
		return
	}
	m, err := p.fetchManifest(ctx, s, src.d.digest)
	if err != nil {
		sourceError(ex, pl, err, codeManifestUnknown)
		return
	}
	p.writeManifest(ex, m.desc, m.body, sourceFrom(pl))
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
	if ex.call.kind == kindBlobs {
		resp, err = p.target.do(ex.r.Context(), ex.r.Method, pl.targetRepo, kindBlobs, ex.call.ref, rangeHeader(ex.r))
	} else {
		resp, err = p.targetManifest(ex.r.Context(), ex.r.Method, pl, ex.call.ref)
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

func (p *Proxy) writeManifest(ex *exchange, d desc, body []byte, from string) {
	setContent(ex.w.Header(), d)
	ex.from = from
	ex.w.WriteHeader(http.StatusOK)
	if ex.r.Method == http.MethodGet {
		_, _ = ex.w.Write(body)
	}
}

// targetTrouble logs a target failure other than "not there": the source
// serves instead.
func (p *Proxy) targetTrouble(err error, pl plan) {
	if isNotFound(err) || errors.Is(err, context.Canceled) {
		return
	}
	p.log.Warn("target failed; serving from the source", "repository", pl.targetRepo, "error", err)
}

func sourceFrom(pl plan) string {
	if pl.fallback {
		return fromFallback
	}
	return fromSource
}

// Placeholders for "not asked".
var (
	errNoTarget = &upstreamError{role: roleTarget, status: http.StatusNotFound}
	errNoSource = &upstreamError{role: roleSource, status: http.StatusNotFound}
)
