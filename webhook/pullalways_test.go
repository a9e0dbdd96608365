package webhook

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
)

// reviewPull is a CREATE review of a pod with one container of image and
// imagePullPolicy policy.
func reviewPull(t testing.TB, image, policy string) []byte {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(podReview(t, "apps", image), &r); err != nil {
		t.Fatal(err)
	}
	c := r["request"].(map[string]any)["object"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	c["imagePullPolicy"] = policy
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A container with imagePullPolicy Always has its tag re-copied at most once
// per tagTTL; other pull policies and digest-pinned images never.
func TestPullAlwaysOncePerTagTTL(t *testing.T) {
	const ttl = 200 * time.Millisecond
	h, fm := newTestHandler(t, inTarget, func(o *Options) { o.TagTTL = ttl })
	always := reviewPull(t, "nginx", "Always")
	post(h, always, "")
	post(h, always, "")
	post(h, reviewPull(t, "busybox:1.36", "IfNotPresent"), "")
	post(h, reviewPull(t, "nginx:1.25@"+digest, "Always"), "")
	if got := fm.Copies(); len(got) != 1 || got[0] != "delayed docker.io/library/nginx:latest" {
		t.Fatalf("copies %q, want one delayed copy of nginx:latest", got)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	post(h, always, "")
	if got := fm.Copies(); len(got) != 2 {
		t.Fatalf("copies %q after tagTTL, want a second", got)
	}
}

// With the real engine: a tag that moved at the source is copied again
// after tagTTL, and before it the source is not asked.
func TestPullAlwaysRecopiesMovedTag(t *testing.T) {
	f := newEngineFixture(t)
	img := f.src + "/team/live:latest"
	images.Push(t, img, images.Image(t, 1024, 1, ""))
	const ttl = 300 * time.Millisecond
	h := f.handler(t, func(o *Options) { o.CopyPolicy = policy.CopyImmediate; o.TagTTL = ttl })
	want := f.dst + "/" + strings.Replace(f.src, ":", "_", 1) + "/team/live:latest"
	if got := containerImages(t, h, reviewPull(t, img, "Always")); got[0] != want {
		t.Fatalf("first pod got %q, want %q", got, want)
	}
	moved := images.Push(t, img, images.Image(t, 1024, 1, ""))
	// Within tagTTL: swapped to the copy there is, the source not asked.
	asked := f.srcManifests.Load()
	if got := containerImages(t, h, reviewPull(t, img, "Always")); got[0] != want {
		t.Fatalf("second pod got %q", got)
	}
	if d := targetDigest(t, want); d == moved.String() || f.srcManifests.Load() != asked {
		t.Fatalf("within tagTTL the source was asked (%d requests) or the tag re-copied", f.srcManifests.Load()-asked)
	}
	time.Sleep(ttl)
	if got := containerImages(t, h, reviewPull(t, img, "Always")); got[0] != want {
		t.Fatalf("third pod got %q", got)
	}
	if d := targetDigest(t, want); d != moved.String() {
		t.Fatalf("after tagTTL the target has %s, want the moved tag's %s", d, moved)
	}
}

func targetDigest(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}
