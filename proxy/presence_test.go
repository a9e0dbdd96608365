package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// A cold pull asks the target about all of an image's blobs when the
// manifest comes from the source; then each blob the target lacks comes
// from the source without asking the target again, and one it has (a
// layer an earlier image brought) from the target. The target here holds
// every upload, so the copy stays in flight throughout.
func TestColdPullChecksBlobsAhead(t *testing.T) {
	var backend atomic.Pointer[url.URL]
	release := make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			http.Error(w, "held", http.StatusServiceUnavailable)
			return
		}
		httputil.NewSingleHostReverseProxy(backend.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	t.Cleanup(func() { close(release) })
	e := newEnv(t, func(s *setup) {
		tg, err := target.NewGeneric(target.GenericSpec{Registry: strings.TrimPrefix(front.URL, "http://"), Insecure: true})
		must(t, err)
		s.Target = tg
	})
	backend.Store(&url.URL{Scheme: "http", Host: e.tgt.Addr})

	img := blobImage(t, 3, 64<<10)
	e.push(t, "team/app", "v1", img)
	all := blobs(t, img)
	had := all[2]
	layers, err := img.Layers()
	must(t, err)
	dst, err := name.NewRepository(e.tgt.Addr+"/"+e.mirrorRepo("team/app"), name.Insecure)
	must(t, err)
	must(t, remote.WriteLayer(dst, layers[1]))
	e.tgt.ResetLog()

	if resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/v1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: %s %s", resp.Status, body)
	}
	for _, d := range all {
		resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/blobs/"+d.String())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("blob %s: %s", d, resp.Status)
		}
		checkDigest(t, body, d.String())
	}
	for _, d := range all {
		gets, heads := e.tgt.Count(http.MethodGet, "/blobs/"+d.String()), e.tgt.Count(http.MethodHead, "/blobs/"+d.String())
		switch {
		case heads == 0:
			t.Errorf("blob %s: the target was not asked ahead", d)
		case d == had && gets != 1:
			t.Errorf("blob %s, in the target: %d GETs at the target, want 1", d, gets)
		case d != had && gets != 0:
			t.Errorf("blob %s, not in the target: %d GETs at the target, want 0", d, gets)
		}
	}
}
