package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// localEnv is the embedded default: a local target served by the proxy
// itself, named after the proxy's address.
type localEnv struct {
	env
	addr string
}

func newLocalEnv(t *testing.T, registries ...string) *localEnv {
	t.Helper()
	return newLocalEnvWith(t, func(o *setup) { o.Registries = registries })
}

// newLocalEnvWith is newLocalEnv with its options changed by tune.
func newLocalEnvWith(t *testing.T, tune ...func(*setup)) *localEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	lt, err := target.NewLocal(context.Background(), target.LocalSpec{Path: t.TempDir(), Registry: addr})
	must(t, err)
	t.Cleanup(func() { lt.Close() })
	s := setup{Options: Options{Target: lt, Logger: quiet()}}
	for _, f := range tune {
		f(&s)
	}
	le := &localEnv{env: env{target: lt}, addr: addr}
	le.start(t, s)
	srv := httptest.NewUnstartedServer(le.proxy)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	le.srv = srv
	return le
}

// With a local target and pushes enabled the proxy is also a plain
// registry: what a pusher pushes pulls back by the same name, anonymously.
func TestLocalTargetIsARegistry(t *testing.T) {
	e := newLocalEnvWith(t, withPush(t), func(o *setup) { o.Registries = []string{"docker.io"} })
	img := blobImage(t, 2, 50_000)
	ref, err := name.ParseReference(e.addr+"/team/app:v1", name.Insecure)
	must(t, err)
	must(t, remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: pushUser, Password: pushPass})))
	got, err := remote.Image(ref)
	must(t, err)
	layers, err := got.Layers()
	must(t, err)
	for _, l := range layers {
		rc, err := l.Compressed()
		must(t, err)
		_, err = io.Copy(io.Discard, rc) // checks the digest
		must(t, err)
		rc.Close()
	}
	want, _ := img.Digest()
	resp, body := e.get(t, http.MethodGet, "", "/v2/team/app/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("bare name: %s %s", resp.Status, body)
	}
	checkDigest(t, body, want.String())
}

// The embedded default pulls through into the local store, then serves
// from it with the source gone, by source and by target reference.
func TestLocalPullThrough(t *testing.T) {
	src := registryproc.Start(t, registryproc.Options{})
	e := newLocalEnv(t, src.Addr)
	e.src = src
	img := blobImage(t, 2, 50_000)
	want := e.push(t, "team/app", "v1", img)
	resp, body := e.get(t, http.MethodGet, src.Addr, "/v2/team/app/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s", resp.Status, body)
	}
	for _, d := range blobs(t, img) {
		e.get(t, http.MethodGet, src.Addr, "/v2/team/app/blobs/"+d.String())
	}
	tref, err := name.ParseReference(e.addr+"/"+e.mirrorRepo("team/app")+":v1", name.Insecure)
	must(t, err)
	for i := 0; ; i++ {
		// Asked of the store itself: through the proxy a miss is served from the source.
		if d, err := remote.Head(tref, remote.WithTransport(e.target.Transport())); err == nil && d.Digest == want {
			break
		}
		if i > 600 {
			t.Fatal("never copied into the local store")
		}
		waitABit()
	}
	src.Stop()
	before := served(src.Addr, "manifest", fromTarget)
	resp, body = e.get(t, http.MethodGet, src.Addr, "/v2/team/app/manifests/v1")
	if resp.StatusCode != 200 || served(src.Addr, "manifest", fromTarget)-before != 1 {
		t.Fatalf("from the local store: %s %s", resp.Status, body)
	}
	resp, body = e.get(t, http.MethodGet, e.addr, "/v2/"+e.mirrorRepo("team/app")+"/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("target reference: %s %s", resp.Status, body)
	}
	if !strings.Contains(resp.Header.Get("Content-Type"), "manifest") {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}

	// Blobs come from the store's files, whole and by range.
	layers, err := img.Layers()
	must(t, err)
	rc, err := layers[0].Compressed()
	must(t, err)
	whole, err := io.ReadAll(rc)
	must(t, err)
	rc.Close()
	d := blobs(t, img)[1]
	before = served(src.Addr, "blob", fromTarget)
	resp, body = e.get(t, http.MethodGet, src.Addr, "/v2/team/app/blobs/"+d.String())
	if resp.StatusCode != 200 || !bytes.Equal(body, whole) || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("blob from the local store: %s, %d bytes, digest %q", resp.Status, len(body), resp.Header.Get("Docker-Content-Digest"))
	}
	resp, body = e.get(t, http.MethodGet, src.Addr, "/v2/team/app/blobs/"+d.String(), "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, whole[10:20]) {
		t.Fatalf("range of a blob from the local store: %s %q", resp.Status, body)
	}
	resp, _ = e.get(t, http.MethodHead, src.Addr, "/v2/team/app/blobs/"+d.String())
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(whole)) {
		t.Fatalf("HEAD of a blob from the local store: %s, length %d", resp.Status, resp.ContentLength)
	}
	if n := served(src.Addr, "blob", fromTarget) - before; n != 3 {
		t.Fatalf("%v blob answers counted from the target, want 3", n)
	}
}
