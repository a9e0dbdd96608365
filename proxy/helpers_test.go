package proxy

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	dto "github.com/prometheus/client_model/go"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// env is a proxy in front of a real target registry, with a real source.
type env struct {
	src, tgt *registryproc.Registry
	target   target.Target
	sources  *fetch.Sources
	engine   *mirror.Engine
	proxy    *Proxy
	srv      *httptest.Server
}

// setup is what a test proxy is made of: its options and those of its
// fetch layer. UpstreamTimeout, when set, is the sources' timeout too.
type setup struct {
	Options
	fetch   fetch.Options
	retries int // the engine's Retries
}

// newSources is a fetch layer for a test.
func newSources(t testing.TB, o fetch.Options) *fetch.Sources {
	t.Helper()
	o.Logger = cmp.Or(o.Logger, quiet())
	if o.SpoolDir == "" {
		o.SpoolDir = t.TempDir()
	}
	s, err := fetch.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func quiet() *slog.Logger {
	if os.Getenv("PROXY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newEnv starts a source and a target registry and a proxy (with a copy
// engine sharing its fetches) serving the source.
func newEnv(t *testing.T, tune ...func(*setup)) *env {
	t.Helper()
	e := &env{src: registryproc.Start(t, registryproc.Options{}), tgt: registryproc.Start(t, registryproc.Options{})}
	tg, err := target.NewGeneric(target.GenericSpec{Registry: e.tgt.Addr, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	e.target = tg
	s := setup{Options: Options{Target: tg, Registries: []string{e.src.Addr}, Logger: quiet()}, retries: -1}
	for _, f := range tune {
		f(&s)
	}
	e.start(t, s)
	e.serve(t)
	return e
}

// serve serves the proxy on a loopback port.
func (e *env) serve(t testing.TB) {
	e.srv = httptest.NewServer(e.proxy)
	t.Cleanup(e.srv.Close)
}

// start builds what cmd builds, in its order: the fetch layer, the engine
// reading through it, and the proxy serving from both.
func (e *env) start(t testing.TB, s setup) {
	t.Helper()
	s.fetch.Timeout = cmp.Or(s.fetch.Timeout, s.UpstreamTimeout)
	s.fetch.Logger = cmp.Or(s.fetch.Logger, s.Logger)
	e.sources = newSources(t, s.fetch)
	e.engine = mirror.New(s.Target, mirror.Options{
		Sources: s.fetch.Credentials, SourceTransport: e.sources.Transport(target.NewTransport(false)),
		SourceBlobs: e.sources.CopyLayer,
		Logger:      s.Logger, Retries: s.retries,
	})
	e.engine.Start(context.Background())
	t.Cleanup(e.engine.Close)
	s.Sources, s.Mirror = e.sources, e.engine
	p, err := New(s.Options)
	if err != nil {
		t.Fatal(err)
	}
	e.proxy = p
}

// get sends method to the proxy's path with ?ns=ns (none when empty).
func (e *env) get(t *testing.T, method, ns, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	u := e.srv.URL + path
	if ns != "" {
		u += "?ns=" + ns
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp, body
}

// mirrorRepo is the target repository of a source repository on e.src.
func (e *env) mirrorRepo(repo string) string {
	return strings.Replace(e.src.Addr, ":", "_", 1) + "/" + repo
}

// waitTarget waits until the target has repo:ref with digest want.
func (e *env) waitTarget(t *testing.T, repo, ref string, want v1.Hash) {
	t.Helper()
	r, err := name.ParseReference(e.tgt.Addr+"/"+e.mirrorRepo(repo)+refSep(ref)+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := remote.Head(r)
		if err == nil && d.Digest == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("target never got %s at %s (last: %v, %v)", r, want, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func refSep(ref string) string {
	if strings.Contains(ref, ":") {
		return "@"
	}
	return ":"
}

// blobImage is an image of random layers of size bytes each, stored as
// they are (no compression), so big images are quick to make.
func blobImage(t testing.TB, layers int, size int64) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for range layers {
		b := make([]byte, size)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(b, types.OCILayer)); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// push writes img to the source as repo:tag.
func (e *env) push(t testing.TB, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(e.src.Addr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// blobs lists an image's config and layer digests.
func blobs(t testing.TB, img v1.Image) []v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []v1.Hash{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// served counts requests the proxy served for registry, kind and origin.
func served(registry, kind, from string) float64 {
	var m dto.Metric
	if err := metrics.ProxyRequests.WithLabelValues(registry, kind, from).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not a spec error body: %q (%v)", body, err)
	}
	return e.Errors[0].Code
}

func checkDigest(t *testing.T, body []byte, want string) {
	t.Helper()
	if got := digest.FromBytes(body).String(); got != want {
		t.Fatalf("body digest %s, want %s", got, want)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprintf

func waitABit() { time.Sleep(50 * time.Millisecond) }
