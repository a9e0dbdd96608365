package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

const pushUser, pushPass, pushToken = "pusher", "push-s3cret", "tok-0123456789"

// withPush enables pushes with an htpasswd file (pushUser) and a token file.
func withPush(t testing.TB) func(*setup) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pushPass), bcrypt.MinCost)
	must(t, err)
	dir := t.TempDir()
	htpasswd, token := filepath.Join(dir, "htpasswd"), filepath.Join(dir, "token")
	must(t, os.WriteFile(htpasswd, []byte(pushUser+":"+string(hash)+"\n"), 0o600))
	must(t, os.WriteFile(token, []byte(pushToken+"\n"), 0o600))
	return func(o *setup) { o.Push = &PushOptions{Htpasswd: htpasswd, TokenFile: token} }
}

// writeStatus is the HTTP status a registry error carries.
func writeStatus(t *testing.T, err error) int {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) {
		t.Fatalf("want a registry's refusal, got %v", err)
	}
	return te.StatusCode
}

// writesRefused checks that pushes, uploads and deletes to the proxy are
// all refused with want and the spec's error body.
func writesRefused(t *testing.T, e *env, repo string, d v1.Hash, want int, hdr ...string) {
	t.Helper()
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/v2/" + repo + "/blobs/uploads/"},
		{http.MethodPut, "/v2/" + repo + "/manifests/v1"},
		{http.MethodDelete, "/v2/" + repo + "/manifests/" + d.String()},
		{http.MethodDelete, "/v2/" + repo + "/blobs/" + d.String()},
		{http.MethodPatch, "/v2/" + repo + "/blobs/uploads/0123"},
		{http.MethodPut, "/v2/" + repo + "/blobs/uploads/0123?digest=" + d.String()},
		{http.MethodGet, "/v2/" + repo + "/blobs/uploads/0123"},
	} {
		resp, body := e.get(t, c.method, "", c.path, hdr...)
		if resp.StatusCode != want {
			t.Errorf("%s %s: %s %s, want %d", c.method, c.path, resp.Status, body, want)
			continue
		}
		if code := errorCode(t, body); code == "" {
			t.Errorf("%s %s: no error code", c.method, c.path)
		}
	}
}

// The attack of issue 17, replayed on both kinds of target a proxy serves
// from: an image is mirrored, the source becomes unreachable, and an
// anonymous client pushes another image under the mirror's name and
// deletes the mirror. Every write is refused with 405, and what containerd
// then pulls is the true image, from the target.
func TestPoisoningRefused(t *testing.T) {
	for _, kind := range []string{"generic", "local"} {
		t.Run(kind, func(t *testing.T) {
			src := registryproc.Start(t, registryproc.Options{})
			var e *env
			var addr string
			if kind == "local" {
				le := newLocalEnv(t, src.Addr)
				e, addr = &le.env, le.addr
			} else {
				e = newEnv(t)
				src = e.src
				addr = strings.TrimPrefix(e.srv.URL, "http://")
			}
			e.src = src
			want := mirrored(t, e)
			src.Stop()

			before := counter(t, "read_only")
			evil := blobImage(t, 1, 10_000)
			for _, repo := range []string{e.mirrorRepo("team/app"), "team/app"} {
				ref, err := name.ParseReference(addr+"/"+repo+":v1", name.Insecure)
				must(t, err)
				if err := remote.Write(ref, evil); err == nil || writeStatus(t, err) != http.StatusMethodNotAllowed {
					t.Fatalf("anonymous push to %s: %v, want 405", ref, err)
				}
				writesRefused(t, e, repo, want, http.StatusMethodNotAllowed)
			}
			// containerd names the registry with ns on every request.
			resp, _ := e.get(t, http.MethodPut, src.Addr, "/v2/team/app/manifests/v1")
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("PUT with ns: %s, want 405", resp.Status)
			}
			if got := counter(t, "read_only") - before; got < 15 {
				t.Fatalf("read_only writes counted %v, want every refusal", got)
			}
			var body []byte
			for _, m := range []string{http.MethodHead, http.MethodGet} {
				resp, body = e.get(t, m, src.Addr, "/v2/team/app/manifests/v1")
				if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != want.String() {
					t.Fatalf("%s after the attack: %s digest %q, want the true %s", m, resp.Status, resp.Header.Get("Docker-Content-Digest"), want)
				}
			}
			checkDigest(t, body, want.String())
		})
	}
}

// mirrored pushes team/app:v1 to e.src, pulls it through the proxy and
// waits for its copy in the target.
func mirrored(t *testing.T, e *env) v1.Hash {
	t.Helper()
	want := e.push(t, "team/app", "v1", blobImage(t, 2, 10_000))
	resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("first pull: %s %s", resp.Status, body)
	}
	waitCopied(t, e, "team/app", "v1", want)
	return want
}

// waitCopied waits until the target holds repo:tag of e.src at want.
func waitCopied(t *testing.T, e *env, repo, tag string, want v1.Hash) {
	t.Helper()
	ref, err := name.ParseReference(e.target.Mapper().Host+"/"+e.mirrorRepo(repo)+":"+tag, e.target.NameOptions()...)
	must(t, err)
	for i := 0; ; i++ {
		if d, err := remote.Head(ref, remote.WithTransport(e.target.Transport())); err == nil && d.Digest == want {
			return
		}
		if i > 600 {
			t.Fatalf("never copied: %s", ref)
		}
		waitABit()
	}
}

func counter(t *testing.T, result string) float64 {
	t.Helper()
	return counterValue(t, metrics.ProxyWrites.WithLabelValues(result))
}

// A tag that reached the local store other than by a copy (here written
// straight into the store, as an older version let any client do) is not
// served as the mirror: with the source down the pull fails over (so
// containerd asks the origin), by source and by target reference; with the
// source back the true image is served and copied again, and then served
// from the store.
func TestPlantedTagNotServed(t *testing.T) {
	src := registryproc.Start(t, registryproc.Options{})
	le := newLocalEnv(t, src.Addr)
	e := &le.env
	e.src = src
	want := mirrored(t, e)

	// Bypass the proxy: write another image under the mirror's tag.
	evil := blobImage(t, 1, 10_000)
	evilDigest, _ := evil.Digest()
	store := httpHandlerTransport(le)
	ref, err := name.ParseReference(le.addr+"/"+e.mirrorRepo("team/app")+":v1", name.Insecure)
	must(t, err)
	must(t, remote.Write(ref, evil, remote.WithTransport(store)))
	src.Stop()

	// The proxy that copied the image still knows the source's answer: it
	// serves the true image. A proxy that starts now (a node restarted) has
	// only the store: it fails over.
	fresh, err := New(Options{Target: le.target, Sources: newSources(t, fetch.Options{}), Registries: []string{src.Addr}, Logger: quiet()})
	must(t, err)
	freshSrv := httptest.NewServer(fresh)
	t.Cleanup(freshSrv.Close)
	before := counterValue(t, metrics.ProxyUntrusted.WithLabelValues("tag_not_copied"))
	for _, srv := range []string{e.srv.URL, freshSrv.URL} {
		for _, c := range []struct{ ns, path string }{
			{src.Addr, "/v2/team/app/manifests/v1"},
			{le.addr, "/v2/" + e.mirrorRepo("team/app") + "/manifests/v1"},
		} {
			for _, m := range []string{http.MethodHead, http.MethodGet} {
				req, err := http.NewRequest(m, srv+c.path+"?ns="+c.ns, nil)
				must(t, err)
				resp, err := http.DefaultClient.Do(req)
				must(t, err)
				resp.Body.Close()
				got := resp.Header.Get("Docker-Content-Digest")
				if got == evilDigest.String() || resp.StatusCode == 200 && (srv == freshSrv.URL || got != want.String()) {
					t.Fatalf("%s %s?ns=%s with the source down: %s %s, want the true %s (or, from a fresh proxy, a failure); never the planted %s",
						m, c.path, c.ns, resp.Status, got, want, evilDigest)
				}
			}
		}
	}
	if got := counterValue(t, metrics.ProxyUntrusted.WithLabelValues("tag_not_copied")) - before; got < 8 {
		t.Fatalf("tag_not_copied counted %v times, want 8", got)
	}

	src = registryproc.Start(t, registryproc.Options{Dir: src.Dir, Addr: src.Addr})
	e.src = src
	resp, body := e.get(t, http.MethodGet, src.Addr, "/v2/team/app/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("source back: %s %s", resp.Status, body)
	}
	checkDigest(t, body, want.String())
	waitCopied(t, e, "team/app", "v1", want)
	src.Stop()
	resp, body = e.get(t, http.MethodGet, src.Addr, "/v2/team/app/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("copied again, source down: %s %s", resp.Status, body)
	}
	checkDigest(t, body, want.String())
}

// With target.local.push, a pusher with accepted credentials (htpasswd or
// token) pushes, lists and deletes its own repositories; anonymous and
// wrong credentials get 401 with a Basic challenge; a mirror path (a first
// component naming a registry, or any request naming one with ns) is
// refused with 403 however good the credentials.
func TestPushEnabled(t *testing.T) {
	le := newLocalEnvWith(t, withPush(t), func(o *setup) { o.Registries = []string{"docker.io"} })
	e := &le.env
	img := blobImage(t, 1, 5_000)
	d, _ := img.Digest()
	good := []authn.Authenticator{
		&authn.Basic{Username: pushUser, Password: pushPass},
		&authn.Basic{Username: "anyone", Password: pushToken},
	}
	for i, a := range good {
		ref, err := name.ParseReference(le.addr+"/team/app"+string(rune('a'+i))+":v1", name.Insecure)
		must(t, err)
		must(t, remote.Write(ref, img, remote.WithAuth(a)))
		if got, err := remote.Head(ref); err != nil || got.Digest != d {
			t.Fatalf("pull back %s: %v %v", ref, got, err)
		}
	}
	resp, body := e.get(t, http.MethodPost, "", "/v2/team/bearer/blobs/uploads/", "Authorization", "Bearer "+pushToken)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("bearer token upload: %s %s", resp.Status, body)
	}

	for _, a := range []authn.Authenticator{authn.Anonymous, &authn.Basic{Username: pushUser, Password: "wrong"}} {
		ref, _ := name.ParseReference(le.addr+"/team/other:v1", name.Insecure)
		if err := remote.Write(ref, img, remote.WithAuth(a)); err == nil || writeStatus(t, err) != http.StatusUnauthorized {
			t.Fatalf("push as %v: %v, want 401", a, err)
		}
	}
	resp, _ = e.get(t, http.MethodDelete, "", "/v2/team/appa/manifests/"+d.String())
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="k8s-image-swapper"` {
		t.Fatalf("anonymous delete: %s challenge %q, want 401 Basic", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}

	cred := basicAuth(pushUser, pushPass)
	before := counter(t, "mirror_path")
	for _, repo := range []string{"docker.io/library/app", "registry.local_5000/team/app", "localhost/app", "localhost_5000/app", strings.Replace(le.addr, ":", "_", 1) + "/team/app"} {
		ref, err := name.ParseReference(le.addr+"/"+repo+":v1", name.Insecure)
		must(t, err)
		if err := remote.Write(ref, img, remote.WithAuth(good[0])); err == nil || writeStatus(t, err) != http.StatusForbidden {
			t.Fatalf("push to mirror path %s: %v, want 403", repo, err)
		}
		writesRefused(t, e, repo, d, http.StatusForbidden, cred...)
	}
	resp, _ = e.get(t, http.MethodPut, "docker.io", "/v2/library/app/manifests/v1", cred...)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT with ns=docker.io: %s, want 403", resp.Status)
	}
	if got := counter(t, "mirror_path") - before; got < 5*8+1 {
		t.Fatalf("mirror_path refusals counted %v", got)
	}

	// A mount from a mirror path becomes a plain upload (202), never a 201 mount.
	resp, _ = e.get(t, http.MethodPost, "", "/v2/team/appa/blobs/uploads/?mount="+d.String()+"&from=docker.io/library/app", cred...)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("mount from a mirror path: %s, want 202 (an upload)", resp.Status)
	}
	resp, body = e.get(t, http.MethodDelete, "", "/v2/team/appa/manifests/"+d.String(), cred...)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete own manifest: %s %s", resp.Status, body)
	}
}

// httpHandlerTransport reaches the store behind le's proxy directly.
func httpHandlerTransport(le *localEnv) http.RoundTripper {
	return target.HandlerTransport(le.proxy.store)
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	must(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

// Push credentials that cannot work stop the proxy at start-up, naming the file.
func TestPushOptionsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	lt := newLocalEnv(t).target
	for _, c := range []struct {
		o    PushOptions
		want string
	}{
		{PushOptions{}, "no credentials"},
		{PushOptions{Htpasswd: filepath.Join(dir, "missing")}, "missing"},
		{PushOptions{Htpasswd: write("md5", "u:$apr1$x$y\n")}, "line 1: want user:bcrypt-hash"},
		{PushOptions{Htpasswd: write("empty", "# nobody\n")}, "no users"},
		{PushOptions{TokenFile: write("blank", " \n")}, "is empty"},
	} {
		_, err := New(Options{Target: lt, Sources: newSources(t, fetch.Options{}), Push: &c.o, Logger: quiet()})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.o, err, c.want)
		}
	}
	tg, err := target.NewGeneric(target.GenericSpec{Registry: "registry.example.com"})
	must(t, err)
	if _, err := New(Options{Target: tg, Sources: newSources(t, fetch.Options{}), Push: &PushOptions{TokenFile: write("tok", "x")}, Logger: quiet()}); err == nil ||
		!strings.Contains(err.Error(), "need a local target") {
		t.Errorf("push on a generic target: %v", err)
	}
}
