package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// A cold pull is served from the source and copied; the next one comes
// from the target, even with the source gone.
func TestMissServesSourceThenTarget(t *testing.T) {
	e := newEnv(t)
	img := blobImage(t, 2, 64<<10)
	want := e.push(t, "team/app", "v1", img)
	reg := e.src.Addr
	srcBefore, tgtBefore := served(reg, "manifest", fromSource), served(reg, "manifest", fromTarget)

	resp, body := e.get(t, http.MethodHead, reg, "/v2/team/app/manifests/v1")
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("HEAD: %s %q", resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != want.String() {
		t.Fatalf("HEAD digest %s, want %s", got, want)
	}
	if resp.ContentLength <= 0 || !strings.Contains(resp.Header.Get("Content-Type"), "manifest") {
		t.Fatalf("HEAD headers: %v", resp.Header)
	}
	resp, body = e.get(t, http.MethodGet, reg, "/v2/team/app/manifests/"+want.String())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest: %s %s", resp.Status, body)
	}
	checkDigest(t, body, want.String())
	for _, d := range blobs(t, img) {
		resp, body := e.get(t, http.MethodGet, reg, "/v2/team/app/blobs/"+d.String())
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("GET blob %s: %s %v", d, resp.Status, resp.Header)
		}
		checkDigest(t, body, d.String())
	}
	if got := served(reg, "manifest", fromSource) - srcBefore; got != 2 {
		t.Errorf("manifest requests served from the source: %v, want 2", got)
	}

	e.waitTarget(t, "team/app", "v1", want)
	e.src.Stop()
	resp, body = e.get(t, http.MethodGet, reg, "/v2/team/app/manifests/v1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET with the source down: %s %s", resp.Status, body)
	}
	checkDigest(t, body, want.String())
	for _, d := range blobs(t, img) {
		resp, body := e.get(t, http.MethodGet, reg, "/v2/team/app/blobs/"+d.String())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET blob with the source down: %s", resp.Status)
		}
		checkDigest(t, body, d.String())
	}
	if got := served(reg, "manifest", fromTarget) - tgtBefore; got != 1 {
		t.Errorf("manifest requests served from the target: %v, want 1", got)
	}
}

// go-containerregistry pulls through the proxy naming the registry in the
// path (no ns), and checks every digest and size.
func TestClientWithoutNs(t *testing.T) {
	e := newEnv(t)
	img := blobImage(t, 3, 100<<10)
	e.push(t, "team/app", "v1", img)
	proxyHost := strings.TrimPrefix(e.srv.URL, "http://")
	ref, err := name.ParseReference(proxyHost+"/"+e.mirrorRepo("team/app")+":v1", name.Insecure)
	must(t, err)
	got, err := remote.Image(ref)
	must(t, err)
	// Reading a remote layer checks its size and digest.
	layers, err := got.Layers()
	must(t, err)
	for _, l := range layers {
		rc, err := l.Compressed()
		must(t, err)
		_, err = io.Copy(io.Discard, rc)
		must(t, err)
		must(t, rc.Close())
	}
	if _, err := got.ConfigFile(); err != nil {
		t.Fatalf("config through the proxy: %v", err)
	}
	if len(layers) != 3 {
		t.Fatalf("%d layers", len(layers))
	}
}

// Only configured registries are fetched from; the error bodies are the spec's.
func TestNoOpenRelay(t *testing.T) {
	e := newEnv(t)
	other := registryproc.Start(t, registryproc.Options{})
	e.get(t, http.MethodGet, "", "/v2/")
	for _, c := range []struct{ ns, path string }{
		{other.Addr, "/v2/team/app/manifests/v1"},
		{"evil.example.com", "/v2/team/app/blobs/sha256:" + strings.Repeat("a", 64)},
		{"", "/v2/" + strings.Replace(other.Addr, ":", "_", 1) + "/team/app/manifests/v1"},
		{"", "/v2/library/nginx/manifests/latest"}, // docker.io is not in this proxy's list
	} {
		resp, body := e.get(t, http.MethodGet, c.ns, c.path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("ns=%q %s: %s, want 404", c.ns, c.path, resp.Status)
			continue
		}
		if code := errorCode(t, body); code != codeNameUnknown && code != codeManifestUnknown && code != codeBlobUnknown {
			t.Errorf("ns=%q %s: code %s", c.ns, c.path, code)
		}
	}
	for _, q := range other.Requests() {
		if q.Path != "/v2/" { // registryproc's own readiness probe
			t.Errorf("the unlisted registry got %s %s", q.Method, q.Path)
		}
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	e.push(t, "team/app", "v1", blobImage(t, 1, 10))
	reg := e.src.Addr
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v2/team/app/manifests/nope", 404, codeManifestUnknown},
		{http.MethodGet, "/v2/team/app/manifests/sha256:" + strings.Repeat("b", 64), 404, codeManifestUnknown},
		{http.MethodGet, "/v2/team/app/blobs/sha256:" + strings.Repeat("c", 64), 404, codeBlobUnknown},
		{http.MethodGet, "/v2/team/nope/manifests/v1", 404, ""},
		{http.MethodPut, "/v2/team/app/manifests/v2", 405, codeUnsupported},
		{http.MethodDelete, "/v2/team/app/manifests/v1", 405, codeUnsupported},
		{http.MethodGet, "/v2/team/app/tags/list", 404, codeUnsupported},
		{http.MethodGet, "/v2/Team/app/manifests/v1", 404, codeUnsupported},
	}
	for _, c := range cases {
		resp, body := e.get(t, c.method, reg, c.path)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %s, want %d (%s)", c.method, c.path, resp.Status, c.status, body)
			continue
		}
		if c.code != "" && errorCode(t, body) != c.code {
			t.Errorf("%s %s: code %s, want %s", c.method, c.path, errorCode(t, body), c.code)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, ct)
		}
	}
	// A HEAD gets the status without a body.
	resp, body := e.get(t, http.MethodHead, reg, "/v2/team/app/manifests/nope")
	if resp.StatusCode != 404 || len(body) != 0 {
		t.Errorf("HEAD of a missing manifest: %s %q", resp.Status, body)
	}
}

// Range requests work from the source (through the spool) and the target.
func TestRange(t *testing.T) {
	e := newEnv(t)
	img := blobImage(t, 1, 1000)
	want := e.push(t, "team/app", "v1", img)
	layer := blobs(t, img)[1]
	l, err := img.LayerByDigest(layer)
	must(t, err)
	rc, err := l.Compressed()
	must(t, err)
	full := new(bytes.Buffer)
	_, _ = full.ReadFrom(rc)
	check := func(from string) {
		for rg, part := range map[string][]byte{
			"bytes=10-19": full.Bytes()[10:20], "bytes=990-": full.Bytes()[990:], "bytes=-5": full.Bytes()[995:],
			"bytes=995-5000": full.Bytes()[995:],
		} {
			resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/blobs/"+layer.String(), "Range", rg)
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, part) {
				t.Errorf("%s %s: %s, %d bytes", from, rg, resp.Status, len(body))
			}
		}
		resp, _ := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/blobs/"+layer.String(), "Range", "bytes=1000-")
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("%s: past the end: %s", from, resp.Status)
		}
	}
	check("source")
	e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/v1")
	e.waitTarget(t, "team/app", "v1", want)
	e.src.Stop()
	check("target")
}

// Ten clients asking for the same blobs at once cause one fetch of each
// from the source, and the copy into the target reuses them.
func TestCoalescing(t *testing.T) {
	e := newEnv(t)
	img := blobImage(t, 2, 8<<20)
	want := e.push(t, "team/big", "v1", img)
	e.src.ResetLog()
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/big/manifests/v1")
			if resp.StatusCode != 200 {
				errs <- "manifest: " + resp.Status
				return
			}
			for _, d := range blobs(t, img) {
				resp, b := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/big/blobs/"+d.String())
				if resp.StatusCode != 200 || digestOf(b) != d.String() {
					errs <- "blob " + d.String() + ": " + resp.Status
				}
			}
			_ = body
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	e.waitTarget(t, "team/big", "v1", want)
	for _, d := range blobs(t, img) {
		if n := e.src.Count(http.MethodGet, "/blobs/"+d.String()); n != 1 {
			t.Errorf("source fetches of %s: %d, want 1", d, n)
		}
	}
	if n := e.src.Count(http.MethodGet, "/manifests/"); n != 1 {
		t.Errorf("source manifest GETs: %d, want 1", n)
	}
	if n := e.src.Count(http.MethodHead, "/manifests/v1"); n != 1 {
		t.Errorf("source tag HEADs: %d, want 1", n)
	}
}

func TestOnMissWait(t *testing.T) {
	e := newEnv(t, func(o *setup) { o.OnMiss = policy.OnMissWait; o.WaitTimeout = 20 * time.Second })
	want := e.push(t, "team/app", "v1", blobImage(t, 1, 1000))
	before := served(e.src.Addr, "manifest", fromTarget)
	resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s", resp.Status, body)
	}
	checkDigest(t, body, want.String())
	if got := served(e.src.Addr, "manifest", fromTarget) - before; got != 1 {
		t.Errorf("served from the target: %v, want 1 (the copy was waited for)", got)
	}
}

func digestOf(b []byte) string { return digest.FromBytes(b).String() }

// The proxy's defaults, as README's proxy block documents them.
func TestDefaults(t *testing.T) {
	o := Options{}.defaults()
	if o.WaitTimeout != 30*time.Second || o.UpstreamTimeout != 30*time.Second {
		t.Errorf("defaults: %+v", o)
	}
	if len(DefaultRegistries) != 7 || DefaultAddress != "127.0.0.1:7439" {
		t.Errorf("registries %v, address %s", DefaultRegistries, DefaultAddress)
	}
}
