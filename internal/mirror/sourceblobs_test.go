package mirror

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
)

// layerOpener serves the layers of img as Options.SourceBlobs, recording
// what it was asked; bad, when set, turns every byte it sends.
type layerOpener struct {
	img  v1.Image
	fail bool
	bad  bool

	mu    sync.Mutex
	asked map[v1.Hash]string // layer → repository asked for
}

func (o *layerOpener) open(_ context.Context, repo name.Repository, h v1.Hash) (io.ReadCloser, error) {
	o.mu.Lock()
	o.asked[h] = repo.String()
	o.mu.Unlock()
	if o.fail {
		return nil, errors.New("not in the spool")
	}
	l, err := o.img.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	if o.bad {
		for i := range b {
			b[i] ^= 0xff
		}
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// A copy reads each layer through SourceBlobs (the proxy's spool) when it
// opens, and from the source when it does not; the target has the image
// either way.
func TestCopyReadsLayersThroughSourceBlobs(t *testing.T) {
	for _, fail := range []bool{false, true} {
		e := newEnv(t)
		img := images.Image(t, 64*1024, 2, "linux/amd64")
		want := images.Push(t, e.src.Addr+"/library/app:1", img)
		o := &layerOpener{img: img, fail: fail, asked: map[v1.Hash]string{}}
		eng := e.engine(t, Options{SourceBlobs: o.open})
		e.src.ResetLog()
		res, err := eng.Copy(context.Background(), Request{Source: ref(t, e.src.Addr+"/library/app:1")})
		if err != nil {
			t.Fatalf("fail=%v: %v", fail, err)
		}
		if got, err := targetDigest(t, e, res.Target); err != nil || got != want {
			t.Fatalf("fail=%v: target holds %s (%v), want %s", fail, got, err, want)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			h, _ := l.Digest()
			if repo := o.asked[h]; repo != e.src.Addr+"/library/app" {
				t.Errorf("fail=%v: layer %s asked of SourceBlobs for %q", fail, h, repo)
			}
			gets := e.src.Count("GET", "/blobs/"+h.String())
			if !fail && gets != 0 {
				t.Errorf("layer %s: %d GETs at the source, though SourceBlobs had it", h, gets)
			}
			if fail && gets == 0 {
				t.Errorf("layer %s: SourceBlobs failed and the source was not asked", h)
			}
		}
	}
}

// The copy does not hash what SourceBlobs sends: the opener must. Should
// one send other bytes, the target's own check refuses them, and the copy
// fails rather than landing the image.
func TestSourceBlobsWrongBytesFailTheCopy(t *testing.T) {
	e := newEnv(t)
	img := images.Image(t, 64*1024, 2, "linux/amd64")
	images.Push(t, e.src.Addr+"/library/app:1", img)
	o := &layerOpener{img: img, bad: true, asked: map[v1.Hash]string{}}
	eng := e.engine(t, Options{SourceBlobs: o.open, Retries: -1})
	src := ref(t, e.src.Addr+"/library/app:1")
	res, err := eng.Copy(context.Background(), Request{Source: src})
	if err == nil {
		t.Fatalf("a copy of wrong bytes succeeded: %+v", res)
	}
	if !strings.Contains(strings.ToLower(err.Error()), "digest") {
		t.Errorf("the error does not say the digest did not match: %v", err)
	}
	tgt, _ := e.tgt.Mapper().ToTarget(src)
	if _, err := targetDigest(t, e, tgt); err == nil {
		t.Fatal("target has the image whose layers were wrong")
	}
}
