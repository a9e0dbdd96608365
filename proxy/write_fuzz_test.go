package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// FuzzWrite: whatever method, path, query and credentials a client sends to
// a proxy on a local store with pushes enabled, it never panics, the mirror
// (a copied tag) keeps its digest, a write without accepted credentials is
// refused with 401 or 405, and no write into a mirror path succeeds.
func FuzzWrite(f *testing.F) {
	d := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	auth := basicAuth(pushUser, pushPass)[1]
	for _, c := range [][4]string{
		{"PUT", "/v2/127.0.0.1_1/library/nginx/manifests/latest", "", ""},
		{"PUT", "/v2/library/nginx/manifests/latest", "ns=127.0.0.1:1", auth},
		{"DELETE", "/v2/127.0.0.1_1/library/nginx/manifests/" + d, "", auth},
		{"POST", "/v2/127.0.0.1_1/library/nginx/blobs/uploads/", "", auth},
		{"POST", "/v2/team/app/blobs/uploads/", "mount=" + d + "&from=127.0.0.1_1/library/nginx", auth},
		{"PATCH", "/v2/team/app/blobs/uploads/x", "", ""},
		{"GET", "/v2/team/app/blobs/uploads/x", "", ""},
		{"DELETE", "/v2/team/app/manifests/v1", "", "Bearer " + pushToken},
		{"PUT", "/v2/LOCALHOST/a/manifests/v1", "", auth},
		{"PUT", "/v2/a_5000/b/manifests/v1", "", auth},
		{"OPTIONS", "/v2/", "", ""},
		{"GET", "/v2/_catalog", "n=1", ""},
		{"GET", "/v2/127.0.0.1_1/library/nginx/tags/list", "", ""},
	} {
		f.Add(c[0], c[1], c[2], c[3])
	}
	lt, err := target.NewLocal(context.Background(), target.LocalSpec{Path: f.TempDir(), Registry: "127.0.0.1:7439"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { lt.Close() })
	// A copy: written through the store's in-process transport, as the engine writes.
	mirror, err := name.ParseReference("127.0.0.1:7439/127.0.0.1_1/library/nginx:latest", name.Insecure)
	if err != nil {
		f.Fatal(err)
	}
	img := blobImage(f, 1, 100)
	want, _ := img.Digest()
	if err := remote.Write(mirror, img, remote.WithTransport(lt.Transport())); err != nil {
		f.Fatal(err)
	}
	s := setup{Options: Options{Target: lt, Registries: []string{"127.0.0.1:1"}, Logger: quiet(),
		Sources: newSources(f, fetch.Options{Timeout: 100e6}), UpstreamTimeout: 100e6}}
	withPush(f)(&s)
	p, err := New(s.Options)
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, method, path, query, authz string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(method, " \t\r\n") || method == "" {
			return
		}
		req, err := http.NewRequest(method, "http://127.0.0.1:7439"+path+"?"+query, strings.NewReader("{}"))
		if err != nil {
			return
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		func() {
			defer func() {
				if r := recover(); r != nil && r != http.ErrAbortHandler {
					t.Fatalf("%s %s?%s panicked: %v", method, path, query, r)
				}
			}()
			p.ServeHTTP(w, req)
		}()
		if isWrite(req) {
			_, accepted := p.push.check(req)
			if !accepted && w.Code != http.StatusUnauthorized && w.Code != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s?%s without accepted credentials: %d", method, path, query, w.Code)
			}
			if repo, ok := writtenRepo(req.URL.Path); w.Code < 300 && (!ok || req.URL.Query().Has("ns") || isMirror(repo)) {
				t.Fatalf("%s %s?%s wrote (%d) into a mirror path", method, path, query, w.Code)
			}
		}
		got, err := remote.Head(mirror, remote.WithTransport(lt.Transport()))
		if err != nil || got.Digest != want {
			t.Fatalf("after %s %s?%s the mirror is %v (%v), want %s", method, path, query, got, err, want)
		}
	})
}

// isMirror is the fence's rule, written out on its own: a first component
// with a dot, a port (':' or its '_' form) or localhost names a registry.
func isMirror(repo string) bool {
	first, _, _ := strings.Cut(strings.ToLower(repo), "/")
	return strings.ContainsAny(first, ".:_") || first == "localhost"
}
