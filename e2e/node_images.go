//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
)

// busybox is Debian's static busybox (busybox-static): the one program of the test's images.
const busybox = "/bin/busybox"

// sleeperImage is a small runnable image: the static busybox, sleeping. It is the node's
// pause image and the base of the test's workload images.
func sleeperImage(t testing.TB) v1.Image {
	t.Helper()
	b, err := os.ReadFile(busybox)
	if err != nil {
		containerdSkip(t, "%s: %v (apt-get install busybox-static)", busybox, err)
	}
	if f, err := elf.NewFile(bytes.NewReader(b)); err != nil || hasInterp(f) {
		t.Fatalf("%s is not a static binary (apt-get install busybox-static): %v", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(b))},
		{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write(b)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{busybox, "sleep", "2147483647"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func hasInterp(f *elf.File) bool {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// appImage is a runnable image with layers random (incompressible) layers of layerSize bytes
// on top of the sleeper: every call gives new digests, so nothing is cached anywhere.
func appImage(t testing.TB, layerSize int64, layers int) v1.Image {
	t.Helper()
	img := sleeperImage(t)
	for i := 0; i < layers; i++ {
		l, err := random.Layer(layerSize, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// pushImage pushes img (an image or an index) to ref over plain HTTP.
func pushImage(t testing.TB, ref string, img any) v1.Hash {
	t.Helper()
	return images.Push(t, ref, img)
}

// swapperImage is the index `make image` wrote as an OCI layout ($K8S_IMAGE_SWAPPER_IMAGE_LAYOUT,
// default bin/image/oci).
func swapperImage(t testing.TB) v1.ImageIndex {
	t.Helper()
	dir := os.Getenv("K8S_IMAGE_SWAPPER_IMAGE_LAYOUT")
	if dir == "" {
		dir = filepath.Join(repoRoot(), "bin", "image", "oci")
	}
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		containerdSkip(t, "no image layout at %s (run `make image`): %v", dir, err)
	}
	m, err := root.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("%s: want one index in the layout, got %v (%v)", dir, m, err)
	}
	idx, err := root.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return idx
}

// digestIn is the digest of ref in its registry, or an error.
func digestIn(t testing.TB, ref string) (v1.Hash, error) {
	d, err := remote.Head(mustRef(t, ref))
	if err != nil {
		return v1.Hash{}, err
	}
	return d.Digest, nil
}
