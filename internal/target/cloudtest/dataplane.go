// STAND-IN: the front of the cloud registries' data plane. A real
// docker-registry stores and serves everything; the front only refuses,
// as ECR and Artifact Registry do, repositories that were never created.

package cloudtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

var repoPath = regexp.MustCompile(`^/v2/(.+?)/(blobs|manifests|tags)/`)

// newDataPlane proxies to reg. Requests carrying the right credentials for
// a repository known() refuses get NAME_UNKNOWN; everything else, including
// missing or wrong credentials, is the registry's to answer.
func newDataPlane(reg *registryproc.Registry, user, pass string, known func(repo string) bool) *httptest.Server {
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: reg.Addr})
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := repoPath.FindStringSubmatch(r.URL.Path); m != nil {
			u, p, ok := r.BasicAuth()
			if ok && u == user && p == pass && !known(m[1]) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
					"code": "NAME_UNKNOWN", "message": "The repository with name '" + m[1] + "' does not exist in the registry",
				}}})
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
}

// htpasswd is a one-user htpasswd file (bcrypt, as docker-registry wants).
func htpasswd(t testing.TB, user, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(h) + "\n"
}
