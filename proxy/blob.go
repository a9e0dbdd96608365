package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
)

// serveBlob serves a blob from the target, or from the source through the
// spool, with Range.
func (p *Proxy) serveBlob(ex *exchange, pl plan) error {
	ctx := ex.r.Context()
	if p.serveBlobFile(ex, pl) {
		return nil
	}
	if pl.src == nil || !p.targetLacks(ctx, pl.targetRepo, ex.call.Digest) {
		if done, err := p.fromTarget(ex, pl, func() (*http.Response, error) { return p.targetBlob(ex, pl) }); done {
			return err
		}
	}
	s := *pl.src
	if ex.r.Method == http.MethodHead {
		return p.headSourceBlob(ex, pl)
	}
	b, err := p.sources.OpenBlob(ctx, s, ex.call.Digest)
	switch {
	case err == nil:
	case errors.Is(err, fetch.ErrSpool):
		// No room to spool (disk full?): stream straight through instead.
		p.log.Warn("streaming without sharing", "error", err)
		return p.streamSourceBlob(ex, pl)
	default:
		return sourceError(ex, pl, err)
	}
	defer b.Release()
	size := b.Length()
	start, end, partial, ok := parseRange(ex.r.Header.Get("Range"), size)
	h := ex.w.Header()
	if !ok {
		rangeNotSatisfiable(ex, fmt.Sprintf("bytes */%d", size))
		return nil
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", ex.call.Digest.String())
	status, limit := http.StatusOK, int64(-1)
	if size >= 0 {
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	if partial {
		status, limit = http.StatusPartialContent, end+1
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
		h.Set("Content-Length", strconv.FormatInt(end+1-start, 10))
	}
	ex.from = sourceFrom(pl, b.Relay())
	ex.w.WriteHeader(status)
	if _, ok := ex.w.ResponseWriter.(io.ReaderFrom); ok {
		_, err = b.SendTo(ctx, ex.w, start, limit) // sendfile on plain TCP
	} else {
		err = copyBody(ex.w, b.Reader(ctx, start, limit))
	}
	if err != nil {
		abort(ex, err)
	}
	return nil
}

// blobFiles is a target whose blobs are files here (the local store).
type blobFiles interface {
	BlobFile(repo string, d digest.Digest) (*os.File, error)
}

// serveBlobFile serves a blob of a local target straight from its file, with
// Range, the kernel copying the bytes (sendfile); false when the target is
// not local or does not hold the blob.
func (p *Proxy) serveBlobFile(ex *exchange, pl plan) bool {
	if p.files == nil || pl.targetRepo == "" {
		return false
	}
	f, err := p.files.BlobFile(pl.targetRepo, ex.call.Digest)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.log.Warn("local store blob unreadable; serving through the store", "repository", pl.targetRepo, "digest", ex.call.Digest.String(), "error", err)
		}
		return false
	}
	defer f.Close()
	h := ex.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", ex.call.Digest.String())
	h.Set("Etag", `"`+ex.call.Digest.String()+`"`)
	ex.from = fromTarget
	http.ServeContent(ex.w, ex.r, "", time.Time{}, f)
	return true
}

// headSourceBlob answers a HEAD from a blob in the spool, else from the source.
func (p *Proxy) headSourceBlob(ex *exchange, pl plan) error {
	size, err := p.sources.BlobSize(ex.r.Context(), *pl.src, ex.call.Digest)
	if err != nil {
		return sourceError(ex, pl, err)
	}
	h := ex.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", ex.call.Digest.String())
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Accept-Ranges", "bytes")
	}
	ex.from = sourceFrom(pl, "")
	ex.w.WriteHeader(http.StatusOK)
	return nil
}

// streamSourceBlob streams a blob from the source with no spool: checked
// on the fly, the last byte held back until the digest matches. Range is
// ignored (the whole blob is needed to check it), as HTTP allows.
func (p *Proxy) streamSourceBlob(ex *exchange, pl plan) error {
	resp, err := p.sources.StreamBlob(ex.r.Context(), *pl.src, ex.call.Digest)
	if err != nil {
		return sourceError(ex, pl, err)
	}
	defer resp.Body.Close()
	h := ex.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", ex.call.Digest.String())
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	ex.from = sourceFrom(pl, "")
	ex.w.WriteHeader(http.StatusOK)
	if err := copyVerified(ex.w, resp.Body, ex.call.Digest); err != nil {
		abort(ex, err)
	}
	return nil
}

// copyVerified copies r to w holding back the last byte until all of r
// matched d, so a mismatch leaves the client one byte short: a failure.
func copyVerified(w io.Writer, r io.Reader, d digest.Digest) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	v := d.Verifier()
	held := false // buf[0] is the byte held back
	for {
		n, rerr := r.Read(buf[1:])
		if n > 0 {
			_, _ = v.Write(buf[1 : 1+n])
			out := buf[1:n]
			if held {
				out = buf[0:n]
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
			buf[0], held = buf[n], true
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if !v.Verified() {
		return fetch.ErrDigestMismatch
	}
	if held {
		_, err := w.Write(buf[:1])
		return err
	}
	return nil
}

// parseRange reads one "bytes=" range of a size-byte blob. partial is
// false when the whole blob is to be sent (no range, several ranges, or an
// unknown size); ok is false for a range the blob cannot satisfy.
func parseRange(h string, size int64) (start, end int64, partial, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || size < 0 || strings.Contains(spec, ",") {
		return 0, size - 1, false, true
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, size - 1, false, true
	}
	if a == "" { // the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, size - 1, false, true
		}
		if n == 0 || size == 0 {
			return 0, 0, false, false
		}
		return max(0, size-n), size - 1, true, true
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, size - 1, false, true
	}
	end = size - 1
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
			return 0, size - 1, false, true
		}
		end = min(end, size-1)
	}
	if start >= size {
		return 0, 0, false, false
	}
	return start, end, true, true
}
