package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
)

// engineFixture is the real copy engine between two in-memory registries.
type engineFixture struct {
	src, dst string // host:port
	engine   *mirror.Engine
	target   target.Target
	// srcManifests counts the manifest requests (GET and HEAD) the source
	// got for images, not for the signature and fallback tags
	// (sha256-<hex>...) the engine looks for after each copy.
	srcManifests atomic.Int64
}

func newEngineFixture(t testing.TB) *engineFixture {
	t.Helper()
	quiet := registry.Logger(log.New(io.Discard, "", 0))
	f := &engineFixture{}
	reg := registry.New(quiet)
	srcSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "/manifests/sha256-") {
			f.srcManifests.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	dstSrv := httptest.NewServer(registry.New(quiet))
	t.Cleanup(srcSrv.Close)
	t.Cleanup(dstSrv.Close)
	f.src = strings.TrimPrefix(srcSrv.URL, "http://")
	f.dst = strings.TrimPrefix(dstSrv.URL, "http://")
	tgt, err := target.NewGeneric(target.GenericSpec{Registry: f.dst, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	sources, err := auth.NewSources([]auth.Source{{Registry: f.src, Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	f.target = tgt
	f.engine = mirror.New(tgt, mirror.Options{Sources: sources, Logger: quietLogger(), MissingTTL: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	f.engine.Start(ctx)
	t.Cleanup(func() { cancel(); f.engine.Close() })
	return f
}

func (f *engineFixture) handler(t testing.TB, edit func(*Options)) *Handler {
	t.Helper()
	o := Options{Mirror: f.engine, Mapper: f.target.Mapper(), SwapPolicy: policy.SwapExists, CopyPolicy: policy.CopyDelayed,
		Access: &fakeAccess{}, Logger: quietLogger()}
	if edit != nil {
		edit(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// podReview is a v1 CREATE review of a pod with these images.
func podReview(t testing.TB, ns string, imgs ...string) []byte {
	t.Helper()
	var cs []map[string]any
	for i, img := range imgs {
		cs = append(cs, map[string]any{"name": fmt.Sprintf("c%d", i), "image": img})
	}
	r := map[string]any{
		"apiVersion": versionV1, "kind": reviewKind,
		"request": map[string]any{
			"uid": "test-uid", "kind": map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"namespace": ns, "operation": "CREATE",
			"object": map[string]any{"apiVersion": "v1", "kind": "Pod",
				"metadata": map[string]any{"name": "p", "namespace": ns},
				"spec":     map[string]any{"containers": cs}},
		},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func containerImages(t testing.TB, h *Handler, body []byte) []string {
	t.Helper()
	w := post(h, body, "?timeout=10s")
	a := decodeAnswer(t, w.Body.Bytes())
	got, err := applyPatch(requestObject(t, body), a.Response.Patch)
	if err != nil {
		t.Fatal(err)
	}
	return got["containers"]
}

func TestExistsWithRealEngine(t *testing.T) {
	f := newEngineFixture(t)
	img := f.src + "/team/app:v1"
	images.Push(t, img, images.Image(t, 2048, 2, ""))
	h := f.handler(t, nil)

	// Not in the target: kept, and the copy runs.
	if got := containerImages(t, h, podReview(t, "apps", img)); got[0] != img {
		t.Fatalf("first pod got %q, want the original", got)
	}
	src, _ := imageref.Parse(img)
	waitFor(t, func() bool {
		ok, err := f.engine.Exists(context.Background(), src)
		return err == nil && ok
	})
	// The next pod gets the mirror.
	want := f.dst + "/" + strings.Replace(f.src, ":", "_", 1) + "/team/app:v1"
	if got := containerImages(t, h, podReview(t, "apps", img)); got[0] != want {
		t.Fatalf("second pod got %q, want %q", got, want)
	}
}

func TestImmediateWithRealEngine(t *testing.T) {
	f := newEngineFixture(t)
	img := f.src + "/team/now:v1"
	images.Push(t, img, images.Image(t, 2048, 1, ""))
	h := f.handler(t, func(o *Options) { o.CopyPolicy = policy.CopyImmediate })
	want := f.dst + "/" + strings.Replace(f.src, ":", "_", 1) + "/team/now:v1"
	if got := containerImages(t, h, podReview(t, "apps", img)); got[0] != want {
		t.Fatalf("pod got %q, want %q", got, want)
	}
	// An image the source does not have either: kept, quickly.
	missing := f.src + "/team/none:v1"
	if got := containerImages(t, h, podReview(t, "apps", missing)); got[0] != missing {
		t.Fatalf("pod got %q, want the original", got)
	}
}

func TestProbeTarget(t *testing.T) {
	f := newEngineFixture(t)
	if err := probeTarget(context.Background(), f.target); err != nil {
		t.Fatalf("probe: %v", err)
	}
	r := &Readiness{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	WaitForTarget(ctx, f.target, r, 50*time.Millisecond, quietLogger())
	if p := r.waiting(); len(p) != 0 {
		t.Fatalf("still waiting for %v", p)
	}
	down, err := target.NewGeneric(target.GenericSpec{Registry: "127.0.0.1:1", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := probeTarget(context.Background(), down); err == nil {
		t.Fatal("a target with nothing listening was reachable")
	}
	r2 := &Readiness{}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	WaitForTarget(ctx2, down, r2, 50*time.Millisecond, quietLogger())
	if p := r2.waiting(); len(p) != 1 || p[0] != "target" {
		t.Fatalf("pending %v, want [target]", p)
	}
}
