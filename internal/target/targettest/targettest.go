// Package targettest is the contract every kind of target.Target must meet:
// ensure, push, exists, auth and reverse mapping (and, for stores that keep
// state, surviving a restart). A kind is done when Run passes against it.
package targettest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// Harness is one target under test.
type Harness struct {
	Target target.Target
	// Kind is what Target.Kind must say.
	Kind string
	// Private says the registry refuses anonymous requests.
	Private bool
	// Reopen, when set, stops the target and opens it again on the same
	// storage, as a process restart would.
	Reopen func(t *testing.T) target.Target
}

// Run holds the target that open makes to the contract. open is called once per
// subtest so that state does not leak between them.
func Run(t *testing.T, open func(t *testing.T) Harness) {
	t.Run("Kind", func(t *testing.T) {
		h := open(t)
		if got := h.Target.Kind(); got != h.Kind {
			t.Fatalf("Kind() = %q, want %q", got, h.Kind)
		}
	})
	t.Run("EnsureRepository", func(t *testing.T) { testEnsure(t, open(t)) })
	t.Run("PushAndPull", func(t *testing.T) { testPush(t, open(t)) })
	t.Run("Exists", func(t *testing.T) { testExists(t, open(t)) })
	t.Run("Auth", func(t *testing.T) { testAuth(t, open(t)) })
	t.Run("ReverseMapping", func(t *testing.T) { testMapping(t, open(t)) })
	t.Run("Restart", func(t *testing.T) {
		h := open(t)
		if h.Reopen == nil {
			t.Skip("the target keeps no state of its own")
		}
		testRestart(t, h)
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func source(t *testing.T, s string) reference.Named {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ref maps src into tg and parses it for go-containerregistry.
func ref(t *testing.T, tg target.Target, src reference.Named) name.Reference {
	t.Helper()
	named, err := tg.Mapper().ToTarget(src)
	if err != nil {
		t.Fatal(err)
	}
	r, err := targetRef(tg, named)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// push ensures src's repository and writes a random image there.
func push(t *testing.T, ctx context.Context, tg target.Target, src reference.Named) (name.Reference, v1.Hash) {
	t.Helper()
	r := ref(t, tg, src)
	if err := tg.EnsureRepository(ctx, r.Context().RepositoryStr()); err != nil {
		t.Fatalf("EnsureRepository(%s): %v", r.Context().RepositoryStr(), err)
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := remoteOptions(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return r, d
}

// pull reads r whole, checking every digest, and returns its digest.
func pull(t *testing.T, ctx context.Context, tg target.Target, r name.Reference) v1.Hash {
	t.Helper()
	opts, err := remoteOptions(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", r, err)
	}
	if err := readAll(img); err != nil {
		t.Fatalf("pulled %s is not intact: %v", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// readAll reads every blob of img; remote's readers check each layer's
// digest at its end, the config is checked here.
func readAll(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(cfg); "sha256:"+hex.EncodeToString(sum[:]) != m.Config.Digest.String() {
		return fmt.Errorf("config digest mismatch")
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func testEnsure(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	repo, err := h.Target.Mapper().Repository(source(t, "quay.io/team/app:1"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // idempotent
		if err := h.Target.EnsureRepository(ctx, repo); err != nil {
			t.Fatalf("EnsureRepository #%d: %v", i+1, err)
		}
	}
}

func testPush(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	r, want := push(t, ctx, h.Target, source(t, "nginx:1.27"))
	if got := pull(t, ctx, h.Target, r); got != want {
		t.Fatalf("pulled digest %s, pushed %s", got, want)
	}
	byDigest := r.Context().Digest(want.String())
	if got := pull(t, ctx, h.Target, byDigest); got != want {
		t.Fatalf("pull by digest gave %s, want %s", got, want)
	}
}

func testExists(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	r, want := push(t, ctx, h.Target, source(t, "ghcr.io/org/tool:v1"))
	desc, err := head(ctx, h.Target, r)
	if err != nil {
		t.Fatalf("Head of a pushed image: %v", err)
	}
	if desc.Digest != want {
		t.Fatalf("Head digest %s, want %s", desc.Digest, want)
	}
	missingTag := r.Context().Tag("not-there")
	if _, err := head(ctx, h.Target, missingTag); !target.IsNotFound(err) {
		t.Fatalf("Head of a missing tag: want not found, got %v", err)
	}
	missingRepo := ref(t, h.Target, source(t, "ghcr.io/org/never-pushed:v1"))
	if err := h.Target.EnsureRepository(ctx, missingRepo.Context().RepositoryStr()); err != nil {
		t.Fatal(err)
	}
	if _, err := head(ctx, h.Target, missingRepo); !target.IsNotFound(err) {
		t.Fatalf("Head in an empty repository: want not found, got %v", err)
	}
}

func testAuth(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	r, _ := push(t, ctx, h.Target, source(t, "registry.k8s.io/pause:3.10"))
	a, err := h.Target.Authenticator(ctx)
	if err != nil || a == nil {
		t.Fatalf("Authenticator: %v, %v", a, err)
	}
	_, err = remote.Head(r, remote.WithContext(ctx), remote.WithAuth(authn.Anonymous), remote.WithTransport(h.Target.Transport()))
	if !h.Private {
		if err != nil {
			t.Fatalf("anonymous Head on a public target: %v", err)
		}
		return
	}
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != 401 {
		t.Fatalf("anonymous Head on a private target: want 401, got %v", err)
	}
	if target.IsNotFound(err) {
		t.Fatal("a refused request must not read as not found")
	}
}

func testMapping(t *testing.T, h Harness) {
	m := h.Target.Mapper()
	for _, s := range []string{
		"nginx",
		"docker.io/library/nginx:1.27@sha256:" + fmt.Sprintf("%064x", 1),
		"quay.io/prometheus/node-exporter:v1.8.0",
		"registry.local:5000/team/app:dev",
		"localhost:5000/x:y",
		"ghcr.io/a/b/c/d:e",
	} {
		src := source(t, s)
		tgt, err := m.ToTarget(src)
		if err != nil {
			t.Fatalf("ToTarget(%s): %v", src, err)
		}
		if !m.IsTarget(tgt) || m.IsTarget(src) {
			t.Fatalf("IsTarget: %s should be in %s and %s not", tgt, m.Base(), src)
		}
		if _, err := targetRef(h.Target, tgt); err != nil {
			t.Fatalf("%s does not parse as a target reference: %v", tgt, err)
		}
		repo, err := m.Repository(src)
		if err != nil {
			t.Fatal(err)
		}
		if want := m.Host + "/" + repo; tgt.Name() != want {
			t.Fatalf("ToTarget(%s) = %s, want repository %s", src, tgt.Name(), want)
		}
		back, err := m.ToSource(tgt)
		if err != nil {
			t.Fatalf("ToSource(%s): %v", tgt, err)
		}
		if back.String() != src.String() {
			t.Fatalf("ToSource(ToTarget(%s)) = %s", src, back)
		}
	}
}

func testRestart(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	r, want := push(t, ctx, h.Target, source(t, "quay.io/keep/me:1"))
	tg := h.Reopen(t)
	desc, err := head(ctx, tg, r)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if desc.Digest != want {
		t.Fatalf("after restart: digest %s, want %s", desc.Digest, want)
	}
	if got := pull(t, ctx, tg, r); got != want {
		t.Fatalf("after restart: pulled %s, want %s", got, want)
	}
}

// targetRef turns a target reference into go-containerregistry's form.
func targetRef(tg target.Target, r reference.Named) (name.Reference, error) {
	return name.ParseReference(r.String(), tg.NameOptions()...)
}

// remoteOptions reach tg with its own credentials and transport.
func remoteOptions(ctx context.Context, tg target.Target) ([]remote.Option, error) {
	a, err := tg.Authenticator(ctx)
	if err != nil {
		return nil, err
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(a), remote.WithTransport(tg.Transport())}, nil
}

// head is r's descriptor in tg.
func head(ctx context.Context, tg target.Target, r name.Reference) (*v1.Descriptor, error) {
	opts, err := remoteOptions(ctx, tg)
	if err != nil {
		return nil, err
	}
	return remote.Head(r, opts...)
}
