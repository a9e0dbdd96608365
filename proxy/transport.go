package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strconv"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// SourceTransport is for the copy engine's requests to sources (wrap it
// as mirror.Options.SourceTransport): blob GETs and manifest GETs by digest
// are answered from what the proxy is streaming, or just streamed, to its
// clients, so a copy a pull triggered costs the source nothing more. All
// else, and anything the proxy cannot answer, goes to next.
func (p *Proxy) SourceTransport(next http.RoundTripper) http.RoundTripper {
	return &sharedTransport{p: p, next: next}
}

type sharedTransport struct {
	p    *Proxy
	next http.RoundTripper
}

func (t *sharedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, ok := parseCall(req.URL.Path)
	if !ok || c.dgst == "" || req.Header.Get("Range") != "" ||
		req.Method != http.MethodGet && !(req.Method == http.MethodHead && c.kind == kindManifests) {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	s := source{registry: registry.Canonical(req.URL.Host), repo: c.name}
	h := http.Header{"Docker-Content-Digest": {c.dgst.String()}}
	if c.kind == kindManifests {
		var m *manifest
		var err error
		if req.Method == http.MethodHead {
			// Only from the cache: a GET would count as a pull at Docker Hub.
			var ok bool
			if m, ok = t.p.manifests.get(s.String() + "@" + c.dgst.String()); !ok {
				return t.next.RoundTrip(req)
			}
		} else if m, err = t.p.fetchManifest(ctx, s, c.dgst); err != nil {
			return t.next.RoundTrip(req)
		}
		setContent(h, m.desc)
		body := io.NopCloser(bytes.NewReader(m.body))
		if req.Method == http.MethodHead {
			body = http.NoBody
		}
		return response(req, h, m.size, body), nil
	}
	b, err := t.p.openBlob(ctx, s, c.dgst)
	if err != nil {
		return t.next.RoundTrip(req)
	}
	size := b.length()
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	h.Set("Content-Type", "application/octet-stream")
	body := &spoolBody{Reader: b.reader(ctx, 0, -1), close: func() { t.p.spool.release(b) }}
	return response(req, h, size, body), nil
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
