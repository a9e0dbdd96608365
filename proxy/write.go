package proxy

import (
	"net/http"
	"strings"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// The proxy is read-only to its clients: what nodes pull is written only by
// the copy engine, in-process. A write a client could make would let anyone
// who reaches the proxy replace an image every node runs. With pushes
// enabled (target.local.push, a local target only) an authenticated client
// may push its own repositories, never a mirror path.

// isWrite tells whether r would change the store: any method but GET and
// HEAD, and anything under an upload session.
func isWrite(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead || strings.Contains(r.URL.Path, "/blobs/uploads")
}

// serveWrite refuses r unless pushes are enabled, its credentials are
// accepted and its repository is no mirror; then the local store serves it.
func (p *Proxy) serveWrite(w http.ResponseWriter, r *http.Request) error {
	if p.store == nil || p.push == nil {
		metrics.ProxyWrites.WithLabelValues("read_only").Inc()
		return newError(http.StatusMethodNotAllowed, codeUnsupported,
			"the proxy is read-only: it is written only by its copy engine (see target.local.push)")
	}
	user, ok := p.push.check(r)
	if !ok {
		metrics.ProxyWrites.WithLabelValues("unauthenticated").Inc()
		return basicChallenge(codeUnauthorized, "pushes need credentials (target.local.push)")
	}
	repo, ok := writtenRepo(r.URL.Path)
	if !ok {
		metrics.ProxyWrites.WithLabelValues("read_only").Inc()
		return newError(http.StatusMethodNotAllowed, codeUnsupported, "%s %s is not a write this registry takes", r.Method, r.URL.Path)
	}
	if r.URL.Query().Has("ns") || imageref.IsMirrorPath(repo) {
		metrics.ProxyWrites.WithLabelValues("mirror_path").Inc()
		p.log.Warn("push into a mirror path refused", "user", user, "method", r.Method, "repository", repo)
		return newError(http.StatusForbidden, codeDenied,
			"%s is a mirror path (its first component names a registry): only the copy engine writes there", repo)
	}
	if q := r.URL.Query(); imageref.IsMirrorPath(q.Get("from")) {
		// A mount would copy a mirrored (maybe private) blob into a
		// repository anyone may read: make it a plain upload instead.
		q.Del("mount")
		q.Del("from")
		r = r.Clone(r.Context())
		r.URL.RawQuery = q.Encode()
		r.RequestURI = r.URL.RequestURI()
	}
	metrics.ProxyWrites.WithLabelValues("accepted").Inc()
	p.log.Info("push", "user", user, "method", r.Method, "path", r.URL.Path)
	p.store.ServeHTTP(w, r)
	return nil
}

// writtenRepo is the repository a write names: /v2/<name>/blobs/uploads/...,
// /v2/<name>/manifests/<ref> or /v2/<name>/blobs/<digest>.
func writtenRepo(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return "", false
	}
	for _, sep := range []string{"/blobs/uploads", "/manifests/", "/blobs/"} {
		if i := strings.LastIndex(rest, sep); i > 0 {
			name := rest[:i]
			return name, registry.IsRepository(name)
		}
	}
	return "", false
}
