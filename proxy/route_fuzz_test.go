package proxy

import (
	"net/url"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// FuzzRoute: parsing a request path and routing it by ns never panics; a
// parsed path is the path again when put back together; every source a
// plan may fetch from is one of the configured registries (the proxy is no
// open relay); and a source's mirror repository maps back to that source.
func FuzzRoute(f *testing.F) {
	d := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	for _, c := range [][2]string{
		{"/v2/library/nginx/manifests/1.27", "docker.io"},
		{"/v2/nginx/manifests/latest", "index.docker.io"},
		{"/v2/org/app/blobs/" + d, "GHCR.io"},
		{"/v2/team/app/manifests/" + d, "127.0.0.1:5000"},
		{"/v2/org/app/manifests/v1", "quay.io"},
		{"/v2/mirror/docker.io/library/nginx/manifests/1", "registry.example.com:5000"},
		{"/v2/mirror/127.0.0.1_5000/x/blobs/" + d, "registry.example.com:5000"},
		{"/v2/ghcr.io/org/app/manifests/v1", ""},
		{"/v2/127.0.0.1_5000/team/app/manifests/v1", ""},
		{"/v2/localhost_5000/a/manifests/v1", ""},
		{"/v2/blobs/blobs/blobs/" + d, ""},
		{"/v2/a/manifests/b/manifests/c", ""},
		{"/v2/x/blobs/uploads/", ""},
		{"/v2/../x/manifests/latest", "docker.io/../evil.example.com"},
	} {
		f.Add(c[0], c[1])
	}
	tg, err := target.NewGeneric(target.GenericSpec{Registry: "registry.example.com:5000/mirror"})
	if err != nil {
		f.Fatal(err)
	}
	allowed := []string{"docker.io", "ghcr.io", "127.0.0.1:5000", "localhost:5000"}
	p, err := New(Options{Target: tg, Sources: newSources(f, fetch.Options{}), Registries: allowed, Logger: quiet()})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, path, ns string) {
		// The ns as a client sends it, through the query string.
		ns = (&url.URL{RawQuery: "ns=" + url.QueryEscape(ns)}).Query().Get("ns")
		c, ok := registry.ParsePath(path)
		if !ok {
			return
		}
		if back := c.String(); back != path {
			t.Fatalf("%q parsed as %+v, which is %q", path, c, back)
		}
		if !registry.IsRepository(c.Repo) || c.Kind != registry.Manifests && c.Kind != registry.Blobs {
			t.Fatalf("%q: bad call %+v", path, c)
		}
		if c.Kind == registry.Blobs && c.Digest == "" {
			t.Fatalf("%q: a blob without a digest", path)
		}
		plans, err := p.route(ns, c.Repo)
		if err != nil {
			if he := asHTTPError(err, ""); he.status < 400 || he.status > 499 {
				t.Fatalf("ns=%q %q: status %d", ns, c.Repo, he.status)
			}
			return
		}
		if len(plans) == 0 {
			t.Fatalf("ns=%q %q: no plan and no error", ns, c.Repo)
		}
		for i, pl := range plans {
			if pl.src != nil && i != len(plans)-1 {
				t.Fatalf("ns=%q %q: plan %d of %d has a source", ns, c.Repo, i, len(plans))
			}
			checkPlan(t, p, ns, c.Repo, pl)
		}
	})
}

// checkPlan asserts that a plan's source is allowed and that its target
// repository and its source name each other.
func checkPlan(t *testing.T, p *Proxy, ns, name string, pl plan) {
	t.Helper()
	if pl.src == nil {
		return
	}
	s := *pl.src
	if !p.allowed[s.Registry] {
		t.Fatalf("ns=%q %q: routed to %s, which is not an allowed registry", ns, name, s.Registry)
	}
	if ns != "" && !p.isTarget(registry.Canonical(ns)) && s.Registry != registry.Canonical(ns) {
		t.Fatalf("ns=%q %q: routed to %s, not the registry asked for", ns, name, s.Registry)
	}
	if pl.targetRepo == "" {
		return
	}
	tgt, err := reference.ParseNamed(p.mapper.Host + "/" + pl.targetRepo)
	if err != nil {
		t.Fatalf("ns=%q %q: target repository %q: %v", ns, name, pl.targetRepo, err)
	}
	back, err := p.mapper.ToSource(tgt)
	if err != nil {
		t.Fatalf("ns=%q %q: %s has no way back to %s: %v", ns, name, tgt, s, err)
	}
	if !strings.EqualFold(registry.Canonical(reference.Domain(back)), s.Registry) || reference.Path(back) != s.Repo {
		t.Fatalf("ns=%q %q: %s maps back to %s, want %s", ns, name, tgt, back, s)
	}
	repo, err := p.mapper.Repository(back)
	if err != nil || repo != pl.targetRepo {
		t.Fatalf("ns=%q %q: %s maps to %q (%v), want %q", ns, name, back, repo, err, pl.targetRepo)
	}
}
