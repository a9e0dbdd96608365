package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
)

// corrupt overwrites the stored bytes of d in a registry's storage with
// as many other bytes: the registry then serves wrong bytes for d.
func corrupt(t *testing.T, root string, d digest.Digest) {
	t.Helper()
	p := filepath.Join(root, "docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
	st, err := os.Stat(p)
	must(t, err)
	b := make([]byte, st.Size())
	_, _ = rand.Read(b)
	must(t, os.WriteFile(p, b, 0o644))
}

// A source that sends other bytes than the digest names never gets them
// to a client whole: the transfer breaks, and nothing is copied.
func TestDigestMismatchAborts(t *testing.T) {
	e := newEnv(t)
	img := blobImage(t, 1, 1<<20)
	e.push(t, "team/app", "v1", img)
	layer := digest.Digest(blobs(t, img)[1].String())
	corrupt(t, e.src.Dir, layer)

	for range 2 {
		// Found out before the answer began: a 502. Found out while
		// streaming: the transfer breaks one byte short.
		resp, err := http.Get(e.srv.URL + "/v2/team/app/blobs/" + layer.String() + "?ns=" + e.src.Addr)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && (err == nil || int64(len(b)) >= 1<<20) {
			t.Fatalf("a corrupt blob was served whole: %s, %d bytes, %v", resp.Status, len(b), err)
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("corrupt blob: %s", resp.Status)
		}
	}
	// A corrupt manifest is refused outright.
	m, err := img.Digest()
	must(t, err)
	corrupt(t, e.src.Dir, digest.Digest(m.String()))
	resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/"+m.String())
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("corrupt manifest: %s %s", resp.Status, body)
	}
}

func TestCopyVerified(t *testing.T) {
	data := make([]byte, 1<<20+3)
	_, _ = rand.Read(data)
	d := digest.FromBytes(data)
	var out bytes.Buffer
	must(t, copyVerified(&out, bytes.NewReader(data), d))
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("copy differs")
	}
	out.Reset()
	err := copyVerified(&out, bytes.NewReader(data), digest.FromString("other"))
	if !errors.Is(err, fetch.ErrDigestMismatch) || out.Len() != len(data)-1 {
		t.Fatalf("mismatch: %v after %d of %d bytes", err, out.Len(), len(data))
	}
	out.Reset()
	must(t, copyVerified(&out, bytes.NewReader(nil), digest.FromBytes(nil)))
	if out.Len() != 0 {
		t.Fatal("empty blob")
	}
}

// Without a usable spool (its folder gone, a full disk) blobs still stream,
// checked, straight from the source (the first failure pauses the spool);
// a small blob, held in memory, does not need the folder.
func TestNoSpoolStreamsDirect(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, func(o *setup) { o.fetch.SpoolDir = dir })
	big, small := blobImage(t, 1, 3<<20), blobImage(t, 1, 300_000)
	e.push(t, "team/app", "v1", big)
	e.push(t, "team/app", "v2", small)
	must(t, os.RemoveAll(dir))
	layer := blobs(t, small)[1]
	resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/blobs/"+layer.String(), "Range", "bytes=0-9")
	if resp.StatusCode != http.StatusPartialContent || len(body) != 10 {
		t.Fatalf("small blob with the spool folder gone: %s, %d bytes", resp.Status, len(body))
	}
	layer = blobs(t, big)[1]
	for range 2 {
		resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/blobs/"+layer.String(), "Range", "bytes=0-9")
		if resp.StatusCode != http.StatusOK { // streamed: the whole blob, to check it
			t.Fatalf("%s %s", resp.Status, body)
		}
		checkDigest(t, body, layer.String())
	}
}

// A blob bigger than the room left on the spool's disk streams whole,
// checked, from its first request, rather than breaking off where the disk
// filled; a blob that fits is still spooled (no pause). The spool is a
// small tmpfs, a nearly full disk as the proxy sees one.
func TestSpoolWithoutRoomStreamsWhole(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs for the spool needs root (CI runs as root)")
	}
	dir := t.TempDir()
	must(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"))
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	e := newEnv(t, func(o *setup) { o.fetch.SpoolDir = dir })
	big, fits := blobImage(t, 1, 6<<20), blobImage(t, 1, 2<<20)
	e.push(t, "team/app", "v1", big)
	e.push(t, "team/app", "v2", fits)

	layer := blobs(t, big)[1]
	resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/blobs/"+layer.String())
	if resp.StatusCode != http.StatusOK || len(body) != 6<<20 {
		t.Fatalf("blob bigger than the spool's room: %s, %d of %d bytes", resp.Status, len(body), 6<<20)
	}
	checkDigest(t, body, layer.String())

	layer = blobs(t, fits)[1]
	resp, body = e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/blobs/"+layer.String())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("blob that fits: %s", resp.Status)
	}
	checkDigest(t, body, layer.String())
	files, err := os.ReadDir(dir)
	must(t, err)
	if len(files) != 1 {
		t.Errorf("%d files in the spool after a blob that fits, want 1 (it is kept for the copy)", len(files))
	}
}

// A copy reads its layers from the spool (fetch.Sources.CopyLayer) and
// does not hash them again: the spool's check must stop a corrupt layer on
// its way to the target, and once it has, the source is not asked again,
// whether the mismatch shows before the copy's reader opens (a small layer,
// checked at once) or while it reads.
func TestCopyOfCorruptLayerFails(t *testing.T) {
	for _, c := range []struct {
		name string
		size int64
	}{{"on disk", 2 << 20}, {"in memory", 64 << 10}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			img := blobImage(t, 1, c.size)
			want := e.push(t, "team/app", "v1", img)
			layer := blobs(t, img)[1]
			corrupt(t, e.src.Dir, digest.Digest(layer.String()))
			src, err := imageref.Parse(e.src.Addr + "/team/app:v1")
			must(t, err)
			_, err = e.engine.Copy(context.Background(), mirror.Request{Source: src})
			if !errors.Is(err, fetch.ErrDigestMismatch) {
				t.Fatalf("copy of a corrupt layer: %v, want the spool's %v", err, fetch.ErrDigestMismatch)
			}
			if got := e.src.Count(http.MethodGet, "/blobs/"+layer.String()); got != 1 {
				t.Errorf("%d GETs of the layer at the source, want 1 (the spool's)", got)
			}
			r, err := name.ParseReference(e.tgt.Addr+"/"+e.mirrorRepo("team/app")+":v1", name.Insecure)
			must(t, err)
			if d, err := remote.Head(r); err == nil && d.Digest == want {
				t.Fatal("the target has the image whose layer was corrupt")
			}
		})
	}
}
