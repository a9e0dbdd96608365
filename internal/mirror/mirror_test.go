package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

type env struct {
	src, dst *registryproc.Registry
	tgt      target.Target
	sources  *auth.Sources
}

// newEnv starts two real registries: a source and a generic insecure target.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{src: registryproc.Start(t, registryproc.Options{}), dst: registryproc.Start(t, registryproc.Options{})}
	var err error
	e.tgt, err = target.NewGeneric(target.GenericSpec{Registry: e.dst.Addr + "/mirror", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	e.sources = insecureSources(t, e.src.Addr)
	return e
}

func insecureSources(t testing.TB, hosts ...string) *auth.Sources {
	t.Helper()
	var regs []auth.Source
	for _, h := range hosts {
		regs = append(regs, auth.Source{Registry: h, Insecure: true})
	}
	s, err := auth.NewSources(regs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) engine(t *testing.T, o Options) *Engine {
	t.Helper()
	if o.Sources == nil {
		o.Sources = e.sources
	}
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := New(e.tgt, o)
	eng.Start(context.Background())
	t.Cleanup(eng.Close)
	return eng
}

func ref(t testing.TB, s string) reference.Named {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// targetDigest reads the digest of a target reference straight from the registry.
func targetDigest(t *testing.T, e *env, tgt reference.Named) (v1.Hash, error) {
	t.Helper()
	r, err := name.ParseReference(tgt.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		return v1.Hash{}, err
	}
	return d.Digest, nil
}

func blobUploads(r *registryproc.Registry) int {
	return r.Count("POST", "/blobs/uploads/") + r.Count("PUT", "/blobs/uploads/") + r.Count("PATCH", "/blobs/uploads/")
}

func TestCopyImage(t *testing.T) {
	e := newEnv(t)
	img := images.Image(t, 1024, 2, "linux/amd64")
	want := images.Push(t, e.src.Addr+"/library/app:1", img)
	eng := e.engine(t, Options{})

	res, err := eng.Copy(context.Background(), Request{Source: ref(t, e.src.Addr+"/library/app:1")})
	if err != nil {
		t.Fatal(err)
	}
	wantTarget := e.dst.Addr + "/mirror/" + strings.ReplaceAll(e.src.Addr, ":", "_") + "/library/app:1"
	if res.Target.String() != wantTarget || res.Digest != want || res.Present {
		t.Fatalf("result %+v, want target %s digest %s", res, wantTarget, want)
	}
	if got, err := targetDigest(t, e, res.Target); err != nil || got != want {
		t.Fatalf("target holds %s (%v), want %s", got, err, want)
	}
	if ok, err := eng.Exists(context.Background(), ref(t, e.src.Addr+"/library/app:1")); !ok || err != nil {
		t.Errorf("Exists after copy: %v %v", ok, err)
	}
}

func TestCopyIndexAllPlatforms(t *testing.T) {
	e := newEnv(t)
	idx := images.Index(t, 4096, 3, "linux/amd64", "linux/arm64")
	want := images.Push(t, e.src.Addr+"/team/multi:v1", idx)
	eng := e.engine(t, Options{})
	res, err := eng.Copy(context.Background(), Request{Source: ref(t, e.src.Addr+"/team/multi:v1")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want {
		t.Errorf("index digest %s, want %s", res.Digest, want)
	}
	// Every platform's image is pullable from the target.
	r, _ := name.ParseReference(res.Target.String(), name.Insecure)
	got, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := got.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("target index has %d manifests", len(im.Manifests))
	}
	for _, m := range im.Manifests {
		img, err := got.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		if len(layers) != 3 {
			t.Errorf("%s: %d layers", m.Platform, len(layers))
		}
		for _, l := range layers {
			rc, err := l.Compressed() // verifies the digest while reading
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("layer of %s: %v", m.Platform, err)
			}
			rc.Close()
		}
	}
	if n := blobUploads(e.dst); n == 0 {
		t.Errorf("no blob was uploaded to the target")
	}
}

func TestCopyPlatformFilter(t *testing.T) {
	e := newEnv(t)
	idx := images.Index(t, 1024, 2, "linux/amd64", "linux/arm64", "linux/s390x")
	full := images.Push(t, e.src.Addr+"/team/multi:v1", idx)
	eng := e.engine(t, Options{Platforms: []v1.Platform{{OS: "linux", Architecture: "arm64"}}})
	res, err := eng.Copy(context.Background(), Request{Source: ref(t, e.src.Addr+"/team/multi:v1")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest == full {
		t.Errorf("filtered index kept the full digest")
	}
	r, _ := name.ParseReference(res.Target.String(), name.Insecure)
	got, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := got.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Platform.Architecture != "arm64" {
		t.Fatalf("target index: %+v", im.Manifests)
	}
	// The other platforms' blobs never reached the target: 1 config + 2 layers.
	if n := e.dst.Count("PUT", "/blobs/uploads/"); n != 3 {
		t.Errorf("%d blobs uploaded, want 3", n)
	}

	// A re-copy of the filtered image is recognised as present.
	e.dst.ResetLog()
	res, err = eng.Copy(context.Background(), Request{Source: ref(t, e.src.Addr+"/team/multi:v1")})
	if err != nil || !res.Present {
		t.Errorf("re-copy: %+v %v", res, err)
	}
	if n := blobUploads(e.dst); n != 0 {
		t.Errorf("re-copy uploaded %d blobs", n)
	}

	// A digest-pinned reference is copied whole so its digest exists.
	res, err = eng.Copy(context.Background(), Request{Source: ref(t, e.src.Addr+"/team/multi:v1@"+full.String())})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != full {
		t.Errorf("pinned copy digest %s, want %s", res.Digest, full)
	}
	if _, err := targetDigest(t, e, res.Target); err != nil {
		t.Errorf("pinned digest missing from the target: %v", err)
	}

	// No wanted platform at all: a clear error, nothing written.
	eng2 := e.engine(t, Options{Platforms: []v1.Platform{{OS: "windows", Architecture: "amd64"}}})
	images.Push(t, e.src.Addr+"/team/other:v1", images.Index(t, 512, 1, "linux/amd64"))
	_, err = eng2.Copy(context.Background(), Request{Source: ref(t, e.src.Addr+"/team/other:v1")})
	if err == nil || !strings.Contains(err.Error(), "source.platforms") {
		t.Errorf("no matching platform: got %v", err)
	}
}

func TestRecopyUploadsNothing(t *testing.T) {
	e := newEnv(t)
	images.Push(t, e.src.Addr+"/library/app:1", images.Index(t, 2048, 3, "linux/amd64", "linux/arm64"))
	eng := e.engine(t, Options{})
	src := ref(t, e.src.Addr+"/library/app:1")
	if _, err := eng.Copy(context.Background(), Request{Source: src}); err != nil {
		t.Fatal(err)
	}
	e.dst.ResetLog()
	e.src.ResetLog()
	res, err := eng.Copy(context.Background(), Request{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Present {
		t.Errorf("re-copy not reported as present")
	}
	eng.pendingReferrers()
	reqs := e.dst.Requests()
	heads, indexReads := 0, 0
	for _, q := range reqs {
		switch {
		case q.Method == "HEAD" && strings.Contains(q.Path, "/manifests/"):
			heads++
		case q.Method == "GET" && strings.HasSuffix(q.Path, "/manifests/"+res.Digest.String()):
			// The referrer copy lists the platform manifests from the
			// target's index (the source's would count as a pull).
			indexReads++
		case strings.Contains(q.Path, "/blobs/"), q.Method != "HEAD" && q.Path != "/v2/":
			t.Errorf("re-copy sent %s %s to the target", q.Method, q.Path)
		}
	}
	if heads != 1 || indexReads != 1 {
		t.Errorf("re-copy sent %d manifest HEADs and %d index GETs to the target, want 1 and 1", heads, indexReads)
	}
	if n := e.src.Count("GET", "/blobs/"); n != 0 {
		t.Errorf("re-copy fetched %d blobs from the source", n)
	}
}

func TestConcurrentCopiesShareOne(t *testing.T) {
	e := newEnv(t)
	img := images.Image(t, 256*1024, 3, "linux/amd64")
	images.Push(t, e.src.Addr+"/library/app:1", img)
	e.src.ResetLog()
	eng := e.engine(t, Options{})
	src := ref(t, e.src.Addr+"/library/app:1")

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%2 == 0 {
				_, err = eng.Copy(context.Background(), Request{Source: src})
			} else {
				err = eng.Mirror(context.Background(), policy.CopyImmediate, time.Minute, Request{Source: src})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// One copy: each blob (3 layers + config) fetched from the source once.
	if n := e.src.Count("GET", "/blobs/sha256:"); n != 4 {
		t.Errorf("source served %d blob GETs, want 4 (one copy)", n)
	}
	if n := e.src.Count("GET", "/manifests/"); n > 1 {
		t.Errorf("source served %d manifest GETs, want at most 1", n)
	}
}

// flaky answers 429 to the first n requests that match, then proxies.
func flaky(t *testing.T, upstream string, n int32, match func(*http.Request) bool, status int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	u, _ := url.Parse("http://" + upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	var refused atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if match(r) && refused.Load() < n {
			refused.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, status)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &refused
}

func TestSourceTooManyRequests(t *testing.T) {
	e := newEnv(t)
	want := images.Push(t, e.src.Addr+"/library/app:1", images.Image(t, 1024, 1, ""))
	srv, refused := flaky(t, e.src.Addr, 2, func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/manifests/") }, http.StatusTooManyRequests)
	host := strings.TrimPrefix(srv.URL, "http://")
	eng := e.engine(t, Options{Sources: insecureSources(t, host), RetryWait: 5 * time.Second})
	start := time.Now()
	res, err := eng.Copy(context.Background(), Request{Source: ref(t, host+"/library/app:1")})
	if err != nil {
		t.Fatal(err)
	}
	if refused.Load() != 2 || res.Digest != want {
		t.Errorf("refused %d, digest %s", refused.Load(), res.Digest)
	}
	// Retry-After: 1 was honoured twice.
	if waited := time.Since(start); waited < 2*time.Second {
		t.Errorf("copy took %s: Retry-After was not honoured", waited)
	}
}

// corrupting serves one blob with wrong bytes.
func corrupting(t *testing.T, upstream string, bad v1.Hash) *httptest.Server {
	t.Helper()
	u, _ := url.Parse("http://" + upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+bad.String()) {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for i := range b {
				b[i] ^= 0xff
			}
			resp.Body = io.NopCloser(strings.NewReader(string(b)))
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv
}

func TestCorruptBlobNeverReachesTarget(t *testing.T) {
	e := newEnv(t)
	img := images.Image(t, 64*1024, 2, "linux/amd64")
	images.Push(t, e.src.Addr+"/library/app:1", img)
	layers, _ := img.Layers()
	bad, _ := layers[1].Digest()
	srv := corrupting(t, e.src.Addr, bad)
	host := strings.TrimPrefix(srv.URL, "http://")
	eng := e.engine(t, Options{Sources: insecureSources(t, host)})
	src := ref(t, host+"/library/app:1")
	res, err := eng.Copy(context.Background(), Request{Source: src})
	if err == nil {
		t.Fatalf("copy of a corrupt blob succeeded: %+v", res)
	}
	tgt, _ := e.tgt.Mapper().ToTarget(src)
	if _, err := targetDigest(t, e, tgt); err == nil {
		t.Fatalf("target has a manifest for an image whose blob was corrupt")
	}
	if e.dst.Count("PUT", "/blobs/uploads/") > 0 {
		// The corrupt blob itself must not be committed under its digest.
		r, _ := name.NewDigest(fmt.Sprintf("%s/mirror/%s/library/app@%s", e.dst.Addr, strings.ReplaceAll(host, ":", "_"), bad), name.Insecure)
		if l, err := remote.Layer(r); err == nil {
			if _, err := l.Size(); err == nil {
				t.Errorf("target stored the corrupt blob %s", bad)
			}
		}
	}
	if ok, _ := eng.Exists(context.Background(), src); ok {
		t.Errorf("Exists says yes after a failed copy")
	}
}

func TestQueueFullDrops(t *testing.T) {
	e := newEnv(t)
	// A source that never answers keeps the only worker busy.
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); srv.Close() })
	host := strings.TrimPrefix(srv.URL, "http://")
	eng := New(e.tgt, Options{Workers: 1, QueueSize: 1, Sources: insecureSources(t, host), CopyTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	eng.Start(context.Background())
	defer eng.Close()

	first, err := eng.Submit(Request{Source: ref(t, host+"/a:1")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(eng.queue) == 0 }) // the worker took it
	if _, err := eng.Submit(Request{Source: ref(t, host+"/b:1")}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = eng.Submit(Request{Source: ref(t, host+"/c:1")})
	if !errors.Is(err, ErrQueueFull) {
		t.Errorf("third submit: got %v, want ErrQueueFull", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("a full queue blocked the caller")
	}
	// Delayed returns at once whatever the queue holds.
	if err := eng.Mirror(context.Background(), policy.CopyDelayed, 0, Request{Source: ref(t, host+"/a:1")}); err != nil {
		t.Errorf("delayed submit of a job in flight: %v", err)
	}
	// Immediate gives up at its deadline.
	err = eng.Mirror(context.Background(), policy.CopyImmediate, 200*time.Millisecond, Request{Source: ref(t, host+"/a:1")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("immediate past its deadline: got %v", err)
	}
	_ = first
	// None copies nothing.
	if err := eng.Mirror(context.Background(), policy.CopyNone, 0, Request{Source: ref(t, host+"/z:1")}); err != nil {
		t.Error(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExistsCache(t *testing.T) {
	e := newEnv(t)
	images.Push(t, e.src.Addr+"/library/app:1", images.Image(t, 512, 1, ""))
	eng := e.engine(t, Options{MissingTTL: time.Minute})
	src := ref(t, e.src.Addr+"/library/app:1")
	if ok, err := eng.Exists(context.Background(), src); ok || err != nil {
		t.Fatalf("before copy: %v %v", ok, err)
	}
	e.dst.ResetLog()
	if ok, _ := eng.Exists(context.Background(), src); ok {
		t.Fatal("cached miss turned into a hit")
	}
	if n := e.dst.Count("HEAD", "/manifests/"); n != 0 {
		t.Errorf("a cached miss asked the target %d times", n)
	}
	if _, err := eng.Copy(context.Background(), Request{Source: src}); err != nil {
		t.Fatal(err)
	}
	// The completed copy invalidates the negative entry.
	e.dst.ResetLog()
	if ok, _ := eng.Exists(context.Background(), src); !ok {
		t.Error("Exists after copy: no")
	}
	if n := e.dst.Count("HEAD", "/manifests/"); n != 0 {
		t.Errorf("a cached hit asked the target %d times", n)
	}
	// Forget makes the next check ask the target.
	eng.Forget(src)
	if ok, _ := eng.Exists(context.Background(), src); !ok {
		t.Error("Exists after Forget: no")
	}
	if n := e.dst.Count("HEAD", "/manifests/"); n != 1 {
		t.Errorf("after Forget the target was asked %d times, want 1", n)
	}
}

func TestLocalTargetSurvivesRestart(t *testing.T) {
	src := registryproc.Start(t, registryproc.Options{})
	want := images.Push(t, src.Addr+"/library/app:1", images.Index(t, 1024, 2, "linux/amd64", "linux/arm64"))
	dir := t.TempDir()
	open := func() *target.Local {
		l, err := target.NewLocal(context.Background(), target.LocalSpec{Path: dir, Registry: "127.0.0.1:7439"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open()
	eng := New(l, Options{Sources: insecureSources(t, src.Addr), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	res, err := eng.Copy(context.Background(), Request{Source: ref(t, src.Addr+"/library/app:1")})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()

	// A new process on the same folder still has the image, manifest and blobs.
	l = open()
	defer l.Close()
	r, err := name.ParseReference(res.Target.String(), l.NameOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r, remote.WithTransport(l.Transport()))
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if d, _ := idx.Digest(); d != want {
		t.Errorf("after restart digest %s, want %s", d, want)
	}
	im, _ := idx.IndexManifest()
	img, err := idx.Image(im.Manifests[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, layer := range layers {
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("layer after restart: %v", err)
		}
		rc.Close()
	}
}

func TestSharedLayersAreMounted(t *testing.T) {
	e := newEnv(t)
	base := images.Image(t, 64*1024, 2, "linux/amd64")
	extra := images.Image(t, 1024, 1, "linux/amd64")
	extraLayers, _ := extra.Layers()
	derived, err := mutate.AppendLayers(base, extraLayers[0])
	if err != nil {
		t.Fatal(err)
	}
	images.Push(t, e.src.Addr+"/team/base:1", base)
	images.Push(t, e.src.Addr+"/team/derived:1", derived)
	eng := e.engine(t, Options{})
	if _, err := eng.Copy(context.Background(), Request{Source: ref(t, e.src.Addr+"/team/base:1")}); err != nil {
		t.Fatal(err)
	}
	e.dst.ResetLog()
	e.src.ResetLog()
	if _, err := eng.Copy(context.Background(), Request{Source: ref(t, e.src.Addr+"/team/derived:1")}); err != nil {
		t.Fatal(err)
	}
	// The two base layers are mounted from the base repository, not uploaded.
	mounts := 0
	for _, q := range e.dst.Requests() {
		if q.Method == "POST" && strings.Contains(q.Path, "from=mirror%2F") && q.Status == "201" {
			mounts++
		}
	}
	if mounts != 2 {
		t.Errorf("%d mounts, want 2", mounts)
	}
	if n := e.src.Count("GET", "/blobs/"); n != 2 { // the new layer and the config
		t.Errorf("source served %d blobs, want 2", n)
	}
	r, _ := name.ParseReference(e.dst.Addr+"/mirror/"+strings.ReplaceAll(e.src.Addr, ":", "_")+"/team/derived:1", name.Insecure)
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("mounted layer unreadable: %v", err)
		}
		rc.Close()
	}
}

// A target that does not answer costs one bounded check; the next checks
// come from the cache as "missing" until the missing TTL ends.
func TestExistsHungTarget(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); srv.Close() })
	tgt, err := target.NewGeneric(target.GenericSpec{Registry: strings.TrimPrefix(srv.URL, "http://"), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	eng := New(tgt, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	src := ref(t, "docker.io/library/nginx:1")
	ok, err := eng.Exists(context.Background(), src)
	if ok || err == nil {
		t.Fatalf("hung target: %v %v, want missing with an error", ok, err)
	}
	ok, err = eng.Exists(context.Background(), src)
	if ok || err != nil {
		t.Fatalf("second check: %v %v, want a cached miss", ok, err)
	}
}

// The engine's defaults, as README's mirror block documents them.
func TestDefaults(t *testing.T) {
	o := Options{}.defaults()
	if o.Workers != 4 || o.QueueSize != 1000 || o.ExistsTTL != time.Hour || o.MissingTTL != 30*time.Second ||
		o.Retries != 5 || o.RetryWait != 30*time.Second {
		t.Errorf("defaults: %+v", o)
	}
	if o := (Options{Retries: -1}).defaults(); o.Retries != -1 {
		t.Errorf("no retries became %d", o.Retries)
	}
}

// With no retries (mirror.maxRetries: 0) a 429 fails the copy at once.
func TestNoRetries(t *testing.T) {
	e := newEnv(t)
	images.Push(t, e.src.Addr+"/library/app:1", images.Image(t, 1024, 1, ""))
	srv, refused := flaky(t, e.src.Addr, 1, func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/manifests/") }, http.StatusTooManyRequests)
	host := strings.TrimPrefix(srv.URL, "http://")
	eng := e.engine(t, Options{Sources: insecureSources(t, host), Retries: -1})
	if _, err := eng.Copy(context.Background(), Request{Source: ref(t, host+"/library/app:1")}); err == nil {
		t.Fatal("copy succeeded through a 429 without retries")
	}
	if refused.Load() != 1 {
		t.Errorf("the source was asked %d times", refused.Load())
	}
}

// A copy of an image the target has, made as the copy command makes it (an
// engine not started, nothing cached): one /v2/ ping per registry however
// many reads follow (the image, its cosign tags, its referrers), and no
// manifest GET at the source, which Docker Hub would count as a pull.
func TestPresentCopyPingsOnce(t *testing.T) {
	e := newEnv(t)
	images.Push(t, e.src.Addr+"/library/app:1", images.Image(t, 1024, 2, "linux/amd64"))
	o := Options{Sources: e.sources, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	src := ref(t, e.src.Addr+"/library/app:1")
	if _, err := New(e.tgt, o).Copy(context.Background(), Request{Source: src}); err != nil {
		t.Fatal(err)
	}
	e.src.ResetLog()
	e.dst.ResetLog()
	res, err := New(e.tgt, o).Copy(context.Background(), Request{Source: src})
	if err != nil || !res.Present {
		t.Fatalf("re-copy: %+v %v", res, err)
	}
	for side, r := range map[string]*registryproc.Registry{"source": e.src, "target": e.dst} {
		pings := 0
		for _, q := range r.Requests() {
			if q.Path == "/v2/" {
				pings++
			}
		}
		if pings != 1 {
			t.Errorf("%s: %d pings of /v2/, want 1: %v", side, pings, r.Requests())
		}
	}
	if n := e.src.Count(http.MethodGet, "/manifests/"); n != 0 {
		t.Errorf("source manifest GETs: %d, want 0: %v", n, e.src.Requests())
	}
}
