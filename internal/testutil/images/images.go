// Package images builds and pushes test images with random (incompressible)
// layers, so sizes and digests are honest and no internet is needed.
package images

import (
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image returns a random image of layers layers of layerSize bytes each,
// for platform (os/arch) when given.
func Image(t testing.TB, layerSize int64, layers int64, platform string) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, layers)
	if err != nil {
		t.Fatal(err)
	}
	if platform != "" {
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// Index returns an OCI index with one random image per platform.
func Index(t testing.TB, layerSize, layers int64, platforms ...string) v1.ImageIndex {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for _, p := range platforms {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        Image(t, layerSize, layers, p),
			Descriptor: v1.Descriptor{Platform: pl},
		})
	}
	return idx
}

// Push writes img (a v1.Image or v1.ImageIndex) to ref on a plain-HTTP
// registry and returns its digest.
func Push(t testing.TB, ref string, img any) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var d v1.Hash
	switch v := img.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(r, v)
		if err == nil {
			d, err = v.Digest()
		}
	case v1.Image:
		err = remote.Write(r, v)
		if err == nil {
			d, err = v.Digest()
		}
	default:
		err = fmt.Errorf("cannot push %T", img)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return d
}
