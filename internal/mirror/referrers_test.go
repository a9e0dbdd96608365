package mirror

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
)

// refEnv: an in-process source with the referrers API and a target
// without it, so writes there go through the fallback tag.
type refEnv struct {
	src, dst string // host:port
}

func newRefEnv(t *testing.T) refEnv {
	t.Helper()
	quiet := registry.Logger(log.New(io.Discard, "", 0))
	src := httptest.NewServer(registry.New(registry.WithReferrersSupport(true), quiet))
	dst := httptest.NewServer(registry.New(quiet))
	t.Cleanup(src.Close)
	t.Cleanup(dst.Close)
	return refEnv{src: strings.TrimPrefix(src.URL, "http://"), dst: strings.TrimPrefix(dst.URL, "http://")}
}

func (r refEnv) engine(t *testing.T, prefix string, o Options) *Engine {
	t.Helper()
	tgt, err := target.NewGeneric(target.GenericSpec{Registry: r.dst + "/" + prefix, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	return (&env{tgt: tgt, sources: insecureSources(t, r.src)}).engine(t, o)
}

func cosignTag(d v1.Hash, suffix string) string { return d.Algorithm + "-" + d.Hex + suffix }

// artifact is a small image standing for a signature or an attestation.
func artifact(t *testing.T, mt types.MediaType) v1.Image {
	t.Helper()
	return mutate.ConfigMediaType(images.Image(t, 64, 1, ""), mt)
}

// referrer pushes an artifact whose subject is the manifest d of repo.
func referrer(t *testing.T, repo string, d v1.Hash, mt types.MediaType) v1.Hash {
	t.Helper()
	subject, err := remote.Head(mustDigest(t, repo, d))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.Subject(artifact(t, mt), *subject).(v1.Image)
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return images.Push(t, repo+"@"+h.String(), img)
}

func mustDigest(t *testing.T, repo string, d v1.Hash) name.Digest {
	t.Helper()
	r, err := name.NewDigest(repo+"@"+d.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tagDigest(t *testing.T, ref string) (v1.Hash, bool) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		return v1.Hash{}, false
	}
	return d.Digest, true
}

func referrersAt(t *testing.T, repo string, d v1.Hash) map[v1.Hash]bool {
	t.Helper()
	idx, err := remote.Referrers(mustDigest(t, repo, d))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	got := map[v1.Hash]bool{}
	for _, m := range im.Manifests {
		got[m.Digest] = true
	}
	return got
}

// Signatures in cosign's tag scheme and OCI referrers of an index and of
// its platform manifests follow the image into the target, where a client
// finds them (the target has no referrers API: the fallback tag); a
// re-signed image gets its new signature on the next copy, though the
// image itself is present.
func TestReferrersFollowTheImage(t *testing.T) {
	r := newRefEnv(t)
	srcRepo := r.src + "/library/app"
	idx := images.Index(t, 512, 1, "linux/amd64", "linux/arm64")
	root := images.Push(t, srcRepo+":1", idx)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	child := im.Manifests[0].Digest

	sig := images.Push(t, srcRepo+":"+cosignTag(root, ".sig"), artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json"))
	att := images.Push(t, srcRepo+":"+cosignTag(child, ".att"), artifact(t, "application/vnd.dsse.envelope.v1+json"))
	sbom := referrer(t, srcRepo, root, "application/spdx+json")
	childRef := referrer(t, srcRepo, child, "application/vnd.example.scan+json")

	eng := r.engine(t, "mirror", Options{})
	copied := func() float64 { return testutil.ToFloat64(metrics.ReferrerCopies.WithLabelValues(refCopied)) }
	failed := func() float64 { return testutil.ToFloat64(metrics.ReferrerCopies.WithLabelValues(refFailed)) }
	copied0, failed0 := copied(), failed()
	res, err := eng.Copy(context.Background(), Request{Source: ref(t, srcRepo+":1")})
	if err != nil {
		t.Fatal(err)
	}
	eng.pendingReferrers()
	tgtRepo := res.Target.Name()
	if d, ok := tagDigest(t, tgtRepo+":"+cosignTag(root, ".sig")); !ok || d != sig {
		t.Errorf("target .sig of the index: %s (%v), want %s", d, ok, sig)
	}
	if d, ok := tagDigest(t, tgtRepo+":"+cosignTag(child, ".att")); !ok || d != att {
		t.Errorf("target .att of a platform manifest: %s (%v), want %s", d, ok, att)
	}
	if got := referrersAt(t, tgtRepo, root); !got[sbom] {
		t.Errorf("target referrers of the index %v lack %s", got, sbom)
	}
	if got := referrersAt(t, tgtRepo, child); !got[childRef] {
		t.Errorf("target referrers of a platform manifest %v lack %s", got, childRef)
	}
	if n := copied() - copied0; n != 4 {
		t.Errorf("referrer_copies_total{result=copied} rose by %v, want 4", n)
	}

	// Re-signed at the source: the present image's next copy brings it.
	resig := images.Push(t, srcRepo+":"+cosignTag(root, ".sig"), artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json"))
	res, err = eng.Copy(context.Background(), Request{Source: ref(t, srcRepo+":1")})
	if err != nil || !res.Present {
		t.Fatalf("second copy: present %v, %v", res.Present, err)
	}
	eng.pendingReferrers()
	if d, _ := tagDigest(t, tgtRepo+":"+cosignTag(root, ".sig")); d != resig {
		t.Errorf("after re-signing the target .sig is %s, want %s", d, resig)
	}
	// Only the new signature was written; nothing failed.
	if n := copied() - copied0; n != 5 {
		t.Errorf("referrer_copies_total{result=copied} rose by %v in all, want 5", n)
	}
	if n := failed() - failed0; n != 0 {
		t.Errorf("referrer_copies_total{result=failed} rose by %v", n)
	}
}

// source.copyReferrers: false copies the image and nothing that points at it.
func TestSkipReferrers(t *testing.T) {
	r := newRefEnv(t)
	srcRepo := r.src + "/library/app"
	root := images.Push(t, srcRepo+":1", images.Image(t, 512, 1, "linux/amd64"))
	images.Push(t, srcRepo+":"+cosignTag(root, ".sig"), artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json"))
	referrer(t, srcRepo, root, "application/spdx+json")

	eng := r.engine(t, "off", Options{SkipReferrers: true})
	res, err := eng.Copy(context.Background(), Request{Source: ref(t, srcRepo+":1")})
	if err != nil {
		t.Fatal(err)
	}
	eng.pendingReferrers()
	if d, ok := tagDigest(t, res.Target.Name()+"@"+root.String()); !ok || d != root {
		t.Fatalf("image not copied: %s %v", d, ok)
	}
	if _, ok := tagDigest(t, res.Target.Name()+":"+cosignTag(root, ".sig")); ok {
		t.Error("a signature was copied with copyReferrers false")
	}
	if got := referrersAt(t, res.Target.Name(), root); len(got) != 0 {
		t.Errorf("referrers copied with copyReferrers false: %v", got)
	}
}
