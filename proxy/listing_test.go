package proxy

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// The local store's catalog and tag lists name a mirrored private image only
// to a client whose credentials its source accepts; public mirrors and the
// store's own repositories are listed to everyone.
func TestListingPrivate(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte(privPass), bcrypt.MinCost)
	must(t, err)
	pub := registryproc.Start(t, registryproc.Options{})
	priv := registryproc.Start(t, registryproc.Options{Htpasswd: privUser + ":" + string(hash) + "\n"})
	sources, err := auth.NewSources([]auth.Source{{
		Registry: priv.Addr, Insecure: true, Username: privUser, Password: privPass}})
	must(t, err)
	le := newLocalEnvWith(t, withPush(t), func(o *setup) {
		o.Registries, o.fetch.Credentials = []string{pub.Addr, priv.Addr}, sources
	})
	e := &le.env
	img := blobImage(t, 1, 1000)
	for _, c := range []struct {
		reg  *registryproc.Registry
		auth authn.Authenticator
	}{{pub, authn.Anonymous}, {priv, &authn.Basic{Username: privUser, Password: privPass}}} {
		ref, err := name.ParseReference(c.reg.Addr+"/team/app:v1", name.Insecure)
		must(t, err)
		must(t, remote.Write(ref, img, remote.WithAuth(c.auth)))
		e.src = c.reg
		d, _ := img.Digest()
		if got := e.pullAll(t, c.reg.Addr, "team/app", "v1", img, privUser, privPass); !allStatus(got, 200) {
			t.Fatalf("pull from %s: %v", c.reg.Addr, got)
		}
		waitCopied(t, e, "team/app", "v1", d)
	}
	own, err := name.ParseReference(le.addr+"/team/own:v1", name.Insecure)
	must(t, err)
	must(t, remote.Write(own, img, remote.WithAuth(&authn.Basic{Username: pushUser, Password: pushPass})))

	e.src = pub
	pubRepo := e.mirrorRepo("team/app")
	e.src = priv
	privRepo := e.mirrorRepo("team/app")
	catalog := func(hdr ...string) []string {
		resp, body := e.get(t, http.MethodGet, "", "/v2/_catalog", hdr...)
		if resp.StatusCode != 200 {
			t.Fatalf("catalog: %s %s", resp.Status, body)
		}
		var c struct{ Repositories []string }
		must(t, json.Unmarshal(body, &c))
		return c.Repositories
	}
	if got := catalog(); !slices.Contains(got, pubRepo) || !slices.Contains(got, "team/own") || slices.Contains(got, privRepo) {
		t.Errorf("anonymous catalog %v: want %s and team/own, not %s", got, pubRepo, privRepo)
	}
	if got := catalog(basicAuth(privUser, "guess")...); slices.Contains(got, privRepo) {
		t.Errorf("catalog with a wrong password lists %s", privRepo)
	}
	if got := catalog(basicAuth(privUser, privPass)...); !slices.Contains(got, privRepo) || !slices.Contains(got, pubRepo) {
		t.Errorf("catalog with accepted credentials %v: want %s and %s", got, pubRepo, privRepo)
	}

	for _, c := range []struct {
		ns, path string
		user     string
		want     int
	}{
		{pub.Addr, "/v2/team/app/tags/list", "", 200},
		{"", "/v2/" + pubRepo + "/tags/list", "", 200},
		{"", "/v2/team/own/tags/list", "", 200},
		{priv.Addr, "/v2/team/app/tags/list", "", 404},
		{"", "/v2/" + privRepo + "/tags/list", "", 404},
		{le.addr, "/v2/" + privRepo + "/tags/list", "", 404},
		{priv.Addr, "/v2/team/app/tags/list", privUser, 200},
		{"", "/v2/" + privRepo + "/tags/list", privUser, 200},
	} {
		hdr := basicAuth(c.user, privPass)
		resp, body := e.get(t, http.MethodGet, c.ns, c.path, hdr...)
		if resp.StatusCode != c.want {
			t.Errorf("%s?ns=%s as %q: %s %s, want %d", c.path, c.ns, c.user, resp.Status, body, c.want)
			continue
		}
		if c.want == 200 {
			var tl struct{ Tags []string }
			must(t, json.Unmarshal(body, &tl))
			if !slices.Contains(tl.Tags, "v1") {
				t.Errorf("%s?ns=%s: tags %v, want v1", c.path, c.ns, tl.Tags)
			}
		} else if code := errorCode(t, body); code != codeNameUnknown {
			t.Errorf("%s?ns=%s: code %s, want %s", c.path, c.ns, code, codeNameUnknown)
		}
	}

	// Referrers too: a mirrored private image's only to accepted credentials.
	d, _ := img.Digest()
	for _, c := range []struct {
		ns, repo, user string
		want           int
	}{
		{pub.Addr, "team/app", "", 200},
		{"", privRepo, "", 404},
		{priv.Addr, "team/app", "", 404},
		{priv.Addr, "team/app", privUser, 200},
		{"", "team/own", "", 200},
	} {
		resp, body := e.get(t, http.MethodGet, c.ns, "/v2/"+c.repo+"/referrers/"+d.String(), basicAuth(c.user, privPass)...)
		if resp.StatusCode != c.want {
			t.Errorf("referrers of %s?ns=%s as %q: %s %s, want %d", c.repo, c.ns, c.user, resp.Status, body, c.want)
		}
	}
}
