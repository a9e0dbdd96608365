package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A target reference whose image is missing from the target (never
// copied, or pruned) is served from its source and copied back.
func TestTargetReferenceFallback(t *testing.T) {
	e := newEnv(t)
	img := blobImage(t, 2, 4096)
	want := e.push(t, "team/app", "v1", img)
	repo := e.mirrorRepo("team/app")
	before := served("target", "manifest", fromFallback)

	// Never copied: containerd asks the proxy with ns=<target>.
	resp, body := e.get(t, http.MethodGet, e.tgt.Addr, "/v2/"+repo+"/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("fallback: %s %s", resp.Status, body)
	}
	checkDigest(t, body, want.String())
	for _, d := range blobs(t, img) {
		resp, b := e.get(t, http.MethodGet, e.tgt.Addr, "/v2/"+repo+"/blobs/"+d.String())
		if resp.StatusCode != 200 {
			t.Fatalf("blob fallback: %s", resp.Status)
		}
		checkDigest(t, b, d.String())
	}
	if got := served("target", "manifest", fromFallback) - before; got != 1 {
		t.Errorf("served as fallback: %v, want 1", got)
	}
	e.waitTarget(t, "team/app", "v1", want)

	// Pruned: delete it from the target; the pull still works and the
	// image comes back.
	ref, err := name.ParseReference(e.tgt.Addr+"/"+repo+"@"+want.String(), name.Insecure)
	must(t, err)
	must(t, remote.Delete(ref))
	for _, d := range blobs(t, img) {
		req, _ := http.NewRequest(http.MethodDelete, "http://"+e.tgt.Addr+"/v2/"+repo+"/blobs/"+d.String(), nil)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delete blob from the target: %s", resp.Status)
		}
	}
	e.src.ResetLog()
	resp, body = e.get(t, http.MethodGet, e.tgt.Addr, "/v2/"+repo+"/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("after pruning: %s %s", resp.Status, body)
	}
	for _, d := range blobs(t, img) {
		if resp, _ := e.get(t, http.MethodGet, e.tgt.Addr, "/v2/"+repo+"/blobs/"+d.String()); resp.StatusCode != 200 {
			t.Fatalf("blob after pruning: %s", resp.Status)
		}
	}
	e.waitTarget(t, "team/app", "v1", want)
	for _, d := range blobs(t, img) {
		// At most one: the spool may still hold it from the first pull.
		if n := e.src.Count(http.MethodGet, "/blobs/"+d.String()); n > 1 {
			t.Errorf("source fetches of %s for the pull and the copy back: %d, want at most 1", d, n)
		}
	}

	// A target reference mapping to a registry the proxy does not serve is
	// answered by the target alone.
	resp, _ = e.get(t, http.MethodGet, e.tgt.Addr, "/v2/evil.example.com/x/manifests/v1")
	if resp.StatusCode != 404 {
		t.Errorf("target reference of an unlisted registry: %s", resp.Status)
	}
	// Without ns, the target host named in the path ('_' for ':').
	resp, body = e.get(t, http.MethodGet, "", "/v2/"+strings.Replace(e.tgt.Addr, ":", "_", 1)+"/"+repo+"/manifests/v1")
	if resp.StatusCode != 200 {
		t.Fatalf("target named in the path: %s %s", resp.Status, body)
	}
	checkDigest(t, body, want.String())
}
