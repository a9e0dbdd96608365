package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// A target that answers blobs with a redirect to its storage (as ECR and
// GAR do) has the redirect passed on: the bytes do not go through the proxy.
func TestTargetRedirectPassedOn(t *testing.T) {
	e := newEnv(t)
	img := blobImage(t, 1, 100_000)
	want := e.push(t, "team/app", "v1", img)
	e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/v1")
	e.waitTarget(t, "team/app", "v1", want)

	// "Storage" is the target registry itself; the front redirects blob GETs there.
	storage := "http://" + e.tgt.Addr
	back, _ := url.Parse(storage)
	rp := httputil.NewSingleHostReverseProxy(back)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			http.Redirect(w, r, storage+r.URL.Path+"?signature=x", http.StatusTemporaryRedirect)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()
	tg, err := target.NewGeneric(target.GenericSpec{Registry: strings.TrimPrefix(front.URL, "http://"), Insecure: true})
	must(t, err)
	f := &env{src: e.src, tgt: e.tgt}
	f.start(t, setup{Options: Options{Target: tg, Registries: []string{e.src.Addr}, Logger: quiet()}, retries: -1})
	f.serve(t)

	layer := blobs(t, img)[1]
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(f.srv.URL + "/v2/team/app/blobs/" + layer.String() + "?ns=" + e.src.Addr)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), storage+"/v2/") {
		t.Fatalf("%s, Location %q: want the target's redirect", resp.Status, resp.Header.Get("Location"))
	}
	// A client that follows it gets the blob from storage.
	_, body := f.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/blobs/"+layer.String())
	checkDigest(t, body, layer.String())
}
