package mirror

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

const (
	benchLayer  = 16 << 20
	benchLayers = 3 // per platform: 2 platforms x 3 = 6 x 16 MiB
)

func benchSetup(b *testing.B) (*registryproc.Registry, *registryproc.Registry, string) {
	src := registryproc.Start(b, registryproc.Options{})
	dst := registryproc.Start(b, registryproc.Options{})
	images.Push(b, src.Addr+"/bench/app:1", images.Index(b, benchLayer, benchLayers, "linux/amd64", "linux/arm64"))
	return src, dst, src.Addr + "/bench/app:1"
}

func benchEngine(b *testing.B, src, dst, prefix string) *Engine {
	tgt, err := target.NewGeneric(target.GenericSpec{Registry: dst + "/" + prefix, Insecure: true})
	if err != nil {
		b.Fatal(err)
	}
	s := insecureSources(b, src)
	return New(tgt, Options{Sources: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// BenchmarkCopy: a 2-platform image of 6 x 16 MiB layers between two local
// registries; each iteration copies into a fresh target repository.
func BenchmarkCopy(b *testing.B) {
	src, dst, image := benchSetup(b)
	b.SetBytes(2 * benchLayers * benchLayer)
	b.ResetTimer()
	for i := range b.N {
		eng := benchEngine(b, src.Addr, dst.Addr, fmt.Sprintf("run%d", i))
		res, err := eng.Copy(context.Background(), Request{Source: ref(b, image)})
		if err != nil || res.Present {
			b.Fatalf("copy: %+v %v", res, err)
		}
	}
}

// BenchmarkRecopy: the same image again, already in the target.
func BenchmarkRecopy(b *testing.B) {
	src, dst, image := benchSetup(b)
	eng := benchEngine(b, src.Addr, dst.Addr, "warm")
	if _, err := eng.Copy(context.Background(), Request{Source: ref(b, image)}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(2 * benchLayers * benchLayer)
	b.ResetTimer()
	for range b.N {
		res, err := eng.Copy(context.Background(), Request{Source: ref(b, image)})
		if err != nil || !res.Present {
			b.Fatalf("re-copy: %+v %v", res, err)
		}
	}
}
