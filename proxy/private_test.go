package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

const privUser, privPass = "puller", "s3cret"

// newPrivateEnv is a proxy whose source needs credentials (which the proxy
// and its copy engine hold) in front of an anonymous target.
func newPrivateEnv(t *testing.T, tune ...func(*setup)) *env {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(privPass), bcrypt.MinCost)
	must(t, err)
	e := &env{
		src: registryproc.Start(t, registryproc.Options{Htpasswd: privUser + ":" + string(hash) + "\n"}),
		tgt: registryproc.Start(t, registryproc.Options{}),
	}
	tg, err := target.NewGeneric(target.GenericSpec{Registry: e.tgt.Addr, Insecure: true})
	must(t, err)
	e.target = tg
	sources, err := auth.NewSources([]auth.Source{{
		Registry: e.src.Addr, Insecure: true, Username: privUser, Password: privPass}})
	must(t, err)
	s := setup{Options: Options{Target: tg, Registries: []string{e.src.Addr}, Logger: quiet()},
		fetch: fetch.Options{Credentials: sources}, retries: -1}
	for _, f := range tune {
		f(&s)
	}
	e.start(t, s)
	e.serve(t)
	return e
}

// pushPrivate writes img to the private source as repo:tag.
func (e *env) pushPrivate(t *testing.T, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(e.src.Addr+"/"+repo+":"+tag, name.Insecure)
	must(t, err)
	must(t, remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: privUser, Password: privPass})))
	d, err := img.Digest()
	must(t, err)
	return d
}

// pullAll GETs the manifest and every blob of img as user:pass (none when
// user is ""), and returns the statuses seen.
func (e *env) pullAll(t *testing.T, ns, repo, ref string, img v1.Image, user, pass string) []int {
	t.Helper()
	hdr := basicAuth(user, pass)
	resp, _ := e.get(t, http.MethodGet, ns, "/v2/"+repo+"/manifests/"+ref, hdr...)
	statuses := []int{resp.StatusCode}
	if resp.StatusCode == http.StatusUnauthorized {
		if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="k8s-image-swapper"` {
			t.Errorf("401 challenge %q, want a Basic one", got)
		}
	}
	for _, d := range blobs(t, img) {
		resp, _ := e.get(t, http.MethodGet, ns, "/v2/"+repo+"/blobs/"+d.String(), hdr...)
		statuses = append(statuses, resp.StatusCode)
	}
	return statuses
}

// basicAuth is the header for user:pass, none when user is "".
func basicAuth(user, pass string) []string {
	if user == "" {
		return nil
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return []string{"Authorization", req.Header.Get("Authorization")}
}

func allStatus(got []int, want int) bool {
	for _, s := range got {
		if s != want {
			return false
		}
	}
	return true
}

// With proxy.private deny (the default), an image the source serves only
// with credentials reaches a pull with credentials the source accepts, and
// once copied into the target never reaches one without: its manifest is
// answered 401 with a Basic challenge, its blobs 404 (what makes containerd
// go on to the origin), also by target reference and by HEAD.
func TestPrivateDeny(t *testing.T) {
	e := newPrivateEnv(t)
	img := blobImage(t, 2, 1000)
	d := e.pushPrivate(t, "team/secret", "v1", img)
	reg := e.src.Addr

	if got := e.pullAll(t, reg, "team/secret", "v1", img, privUser, privPass); !allStatus(got, 200) {
		t.Fatalf("pull with accepted credentials: %v, want all 200", got)
	}
	e.waitTarget(t, "team/secret", "v1", d)

	before := served(reg, "manifest", fromTarget)
	if got := e.pullAll(t, reg, "team/secret", "v1", img, privUser, privPass); !allStatus(got, 200) {
		t.Fatalf("second pull with credentials: %v, want all 200", got)
	}
	if served(reg, "manifest", fromTarget) != before+1 {
		t.Errorf("the second pull with credentials was not served from the target")
	}

	for _, c := range []struct{ what, user, pass string }{{"anonymous", "", ""}, {"wrong password", privUser, "guess"}} {
		got := e.pullAll(t, reg, "team/secret", "v1", img, c.user, c.pass)
		if got[0] != http.StatusUnauthorized || !allStatus(got[1:], http.StatusNotFound) {
			t.Errorf("%s pull: %v, want 401 for the manifest and 404 for the blobs", c.what, got)
		}
		got = e.pullAll(t, reg, "team/secret", d.String(), img, c.user, c.pass)
		if got[0] != http.StatusUnauthorized {
			t.Errorf("%s pull by digest: %v, want 401", c.what, got)
		}
		resp, _ := e.get(t, http.MethodHead, reg, "/v2/team/secret/manifests/v1", basicAuth(c.user, c.pass)...)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s HEAD: %s, want 401", c.what, resp.Status)
		}
	}
	// The target reference (what the webhook swaps in) is no way around it.
	resp, _ := e.get(t, http.MethodGet, e.tgt.Addr, "/v2/"+e.mirrorRepo("team/secret")+"/manifests/v1")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous pull by target reference: %s, want 401", resp.Status)
	}
	// Nor is the path form without ns.
	resp, _ = e.get(t, http.MethodGet, "", "/v2/"+e.mirrorRepo("team/secret")+"/manifests/v1")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous pull by mirror path: %s, want 401", resp.Status)
	}
}

// proxy.sharedRepositories and proxy.private allow serve a private image
// to anonymous pulls; a source that serves anonymously is public anyway.
func TestPrivateSharedAndAllow(t *testing.T) {
	for _, c := range []struct {
		name string
		tune func(*setup)
	}{
		{"shared", func(o *setup) { o.SharedRepositories = []string{"nomatch/*", o.Registries[0] + "/team/*"} }},
		{"allow", func(o *setup) { o.Private = policy.PrivateAllow }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newPrivateEnv(t, c.tune)
			img := blobImage(t, 1, 1000)
			d := e.pushPrivate(t, "team/app", "v1", img)
			if got := e.pullAll(t, e.src.Addr, "team/app", "v1", img, privUser, privPass); !allStatus(got, 200) {
				t.Fatalf("pull with credentials: %v", got)
			}
			e.waitTarget(t, "team/app", "v1", d)
			if got := e.pullAll(t, e.src.Addr, "team/app", "v1", img, "", ""); !allStatus(got, 200) {
				t.Errorf("anonymous pull: %v, want all 200", got)
			}
			// Shared is per repository: another one stays private.
			if c.name == "shared" {
				other := blobImage(t, 1, 1000)
				e.pushPrivate(t, "solo/app", "v1", other)
				if got := e.pullAll(t, e.src.Addr, "solo/app", "v1", other, "", ""); got[0] != http.StatusUnauthorized {
					t.Errorf("anonymous pull of an unshared repository: %v, want 401", got)
				}
			}
		})
	}
	t.Run("public", func(t *testing.T) {
		e := newEnv(t)
		img := blobImage(t, 1, 1000)
		e.push(t, "team/app", "v1", img)
		if got := e.pullAll(t, e.src.Addr, "team/app", "v1", img, "", ""); !allStatus(got, 200) {
			t.Errorf("anonymous pull of a public image: %v, want all 200", got)
		}
	})
}

// When the source cannot say whether a repository is private, it is
// private if the proxy pulls from that registry with credentials of its own.
func TestPrivateSourceDown(t *testing.T) {
	for _, withCreds := range []bool{false, true} {
		e := newEnv(t, func(o *setup) {
			if withCreds {
				s, err := auth.NewSources([]auth.Source{{
					Registry: o.Registries[0], Insecure: true, Username: "u", Password: "p"}})
				must(t, err)
				o.fetch.Credentials = s
			}
		})
		img := blobImage(t, 1, 1000)
		// The source is anonymous: with credentials the proxy sends them
		// anyway, and the registry ignores them.
		d := e.push(t, "team/app", "v1", img)
		e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/v1")
		e.waitTarget(t, "team/app", "v1", d)
		e.src.Stop()
		e.proxy.privacy.verdicts.Delete(e.src.Addr + "/team/app") // as if verdictTTL had passed
		resp, _ := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/"+d.String())
		want := http.StatusOK
		if withCreds {
			want = http.StatusUnauthorized
		}
		if resp.StatusCode != want {
			t.Errorf("source down, proxy credentials %v: %s, want %d", withCreds, resp.Status, want)
		}
	}
}

func TestPrivateOptions(t *testing.T) {
	tg, err := target.NewGeneric(target.GenericSpec{Registry: "registry.example.com"})
	must(t, err)
	if _, err := New(Options{Target: tg, Sources: newSources(t, fetch.Options{}), Private: "open", Logger: quiet()}); err == nil {
		t.Error("an unknown private policy was accepted")
	}
	p, err := New(Options{Target: tg, Sources: newSources(t, fetch.Options{}), Private: policy.PrivateAllow, SharedRepositories: []string{"ghcr.io/acme/*"}, Logger: quiet()})
	must(t, err)
	if !p.privacy.isShared(fetch.Source{Registry: "ghcr.io", Repo: "acme/app"}) || p.privacy.isShared(fetch.Source{Registry: "ghcr.io", Repo: "other/app"}) {
		t.Error("sharedRepositories do not match host/repo globs")
	}
}
