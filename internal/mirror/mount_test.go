package mirror

import (
	"reflect"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// The layers a copy writes answer size, media type and descriptor as the
// remote image's own layers do, from the manifest parsed once.
func TestMountImageLayersDescribed(t *testing.T) {
	reg := registryproc.Start(t, registryproc.Options{})
	images.Push(t, reg.Addr+"/library/app:1", images.Image(t, 512, 3, "linux/amd64"))
	r, err := name.ParseReference(reg.Addr+"/library/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	own, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	homes := &blobHomes{repos: ttlcache.New[v1.Hash, name.Repository](8)}
	got, err := mountImage{Image: img, homes: homes, repo: r.Context()}.Layers()
	if err != nil || len(got) != len(own) {
		t.Fatalf("%d layers (%v), want %d", len(got), err, len(own))
	}
	type describable interface {
		Descriptor() (*v1.Descriptor, error)
	}
	for i, l := range got {
		if _, ok := l.(described); !ok {
			t.Fatalf("layer %d is a %T, not described from the manifest", i, l)
		}
		ws, _ := own[i].Size()
		gs, _ := l.Size()
		wm, _ := own[i].MediaType()
		gm, _ := l.MediaType()
		wd, _ := own[i].(describable).Descriptor()
		gd, _ := l.(describable).Descriptor()
		if ws != gs || wm != gm || !reflect.DeepEqual(wd, gd) {
			t.Fatalf("layer %d: size %d media type %s descriptor %+v, want %d %s %+v", i, gs, gm, gd, ws, wm, wd)
		}
	}
}
