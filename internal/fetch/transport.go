package fetch

import (
	"bytes"
	"io"
	"net/http"
	"strconv"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Transport is the copy engine's way to its sources (mirror.Options.
// SourceTransport): blob GETs and manifest GETs by digest are answered from
// what is being fetched, or was just fetched, for pulls, so a copy a pull
// triggered costs the source nothing more. All else, and anything that
// cannot be answered so, goes to next.
func (s *Sources) Transport(next http.RoundTripper) http.RoundTripper {
	return &sharedTransport{s: s, next: next}
}

type sharedTransport struct {
	s    *Sources
	next http.RoundTripper
}

func (t *sharedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, ok := registry.ParsePath(req.URL.Path)
	if !ok || c.Digest == "" || req.Header.Get("Range") != "" ||
		req.Method != http.MethodGet && !(req.Method == http.MethodHead && c.Kind == registry.Manifests) {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	src := Source{Registry: registry.Canonical(req.URL.Host), Repo: c.Repo}
	h := http.Header{"Docker-Content-Digest": {c.Digest.String()}}
	if c.Kind == registry.Manifests {
		var m *Manifest
		var err error
		if req.Method == http.MethodHead {
			// Only from the cache: a GET would count as a pull at Docker Hub.
			var ok bool
			if m, ok = t.s.manifests.get(src.String() + "@" + c.Digest.String()); !ok {
				return t.next.RoundTrip(req)
			}
		} else if m, err = t.s.Manifest(ctx, src, c.Digest); err != nil {
			return t.next.RoundTrip(req)
		}
		SetContent(h, m.Descriptor)
		body := io.NopCloser(bytes.NewReader(m.Body))
		if req.Method == http.MethodHead {
			body = http.NoBody
		}
		return response(req, h, m.Size, body), nil
	}
	b, err := t.s.OpenBlob(ctx, src, c.Digest)
	if err != nil {
		return t.next.RoundTrip(req)
	}
	size := b.Length()
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	h.Set("Content-Type", "application/octet-stream")
	body := &spoolBody{Reader: b.copyReader(ctx), close: b.Release}
	return response(req, h, size, body), nil
}

// SetContent sets the headers that describe a manifest.
func SetContent(h http.Header, d Descriptor) {
	h.Set("Content-Type", d.MediaType)
	h.Set("Content-Length", strconv.FormatInt(d.Size, 10))
	h.Set("Docker-Content-Digest", d.Digest.String())
}

func response(req *http.Request, h http.Header, size int64, body io.ReadCloser) *http.Response {
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: size, Body: body, Request: req,
	}
}

// spoolBody lets go of its blob once, on Close.
type spoolBody struct {
	io.Reader
	close  func()
	closed bool
}

func (b *spoolBody) Close() error {
	if !b.closed {
		b.closed = true
		b.close()
	}
	return nil
}
