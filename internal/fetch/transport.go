package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

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
	body, size, err := t.s.copyBlob(ctx, src, c.Digest)
	if err != nil {
		return t.next.RoundTrip(req)
	}
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	h.Set("Content-Type", "application/octet-stream")
	return response(req, h, size, body), nil
}

// CopyLayer opens a layer of a source repository for a copy into the
// target (mirror.Options.SourceBlobs), as the transport does a blob GET:
// through the spool, sharing what pulls fetch, reading behind them. The
// reader checks the bytes against h (the last byte comes only once they
// match, else the read fails), so the copy need not hash them again.
func (s *Sources) CopyLayer(ctx context.Context, repo name.Repository, h v1.Hash) (io.ReadCloser, error) {
	d, err := digest.Parse(h.String())
	if err != nil {
		return nil, err
	}
	rc, _, err := s.copyBlob(ctx, Source{Registry: registry.Canonical(repo.RegistryStr()), Repo: repo.RepositoryStr()}, d)
	return rc, err
}

// copyBlob opens blob d of src for a copy; size is -1 when the source did
// not say. The caller closes the reader.
func (s *Sources) copyBlob(ctx context.Context, src Source, d digest.Digest) (rc io.ReadCloser, size int64, err error) {
	b, err := s.OpenBlob(ctx, src, d)
	if errors.Is(err, ErrDigestMismatch) {
		// The source's bytes are wrong: fetched again (the caller's way
		// when it cannot open), they would be wrong again. The copy fails
		// on its first read, as it does when the mismatch shows later.
		return io.NopCloser(failedReader{err}), -1, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return &spoolBody{Reader: b.copyReader(ctx), close: b.Release}, b.Length(), nil
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

// failedReader fails every read with err.
type failedReader struct{ err error }

func (r failedReader) Read([]byte) (int, error) { return 0, r.err }

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
