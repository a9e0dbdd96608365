package target

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
)

// Tags written through the store's in-process transport (the copy engine's
// way in) are in the ledger, across restarts; tags that reach the store
// through its client-facing handler are not; a store from before the
// ledger has its tags adopted once.
func TestTagLedger(t *testing.T) {
	dir := t.TempDir()
	open := func() *Local {
		l, err := NewLocal(context.Background(), LocalSpec{Path: dir, Registry: "127.0.0.1:7439"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	write := func(rt http.RoundTripper, ref string) digest.Digest {
		img, err := random.Image(100, 1)
		if err != nil {
			t.Fatal(err)
		}
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img, remote.WithTransport(rt)); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return digest.Digest(d.String())
	}
	l := open()
	copied := write(l.Transport(), "127.0.0.1:7439/docker.io/library/app:v1")
	write(HandlerTransport(l.Handler()), "127.0.0.1:7439/docker.io/library/app:planted")
	if d, ok := l.CopiedTag("docker.io/library/app", "v1"); !ok || d != copied {
		t.Errorf("copied tag: %s %v, want %s", d, ok, copied)
	}
	if d, ok := l.CopiedTag("docker.io/library/app", "planted"); ok {
		t.Errorf("a tag written past the engine is in the ledger at %s", d)
	}
	l.Close()

	l = open() // a restart: the ledger is on disk
	if d, ok := l.CopiedTag("docker.io/library/app", "v1"); !ok || d != copied {
		t.Errorf("after a restart: %s %v, want %s", d, ok, copied)
	}
	if _, ok := l.CopiedTag("docker.io/library/app", "planted"); ok {
		t.Error("after a restart a planted tag is in the ledger")
	}
	l.Close()

	// An upgrade from a version without the ledger: every tag is adopted.
	if err := os.RemoveAll(filepath.Join(dir, "k8s-image-swapper")); err != nil {
		t.Fatal(err)
	}
	l = open()
	defer l.Close()
	for _, tag := range []string{"v1", "planted"} {
		if _, ok := l.CopiedTag("docker.io/library/app", tag); !ok {
			t.Errorf("tag %s of a store without a ledger was not adopted", tag)
		}
	}
}
