package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// Referrers of a source image come from the source while the target lacks
// the image, and from the target once it is mirrored (the copy brought
// them along); an artifactType
// filter is passed on and said to be applied.
func TestReferrersThroughProxy(t *testing.T) {
	// A source with the referrers API: another embedded store.
	srcStore, err := target.NewLocal(context.Background(), target.LocalSpec{Path: t.TempDir(), Registry: "127.0.0.1:1"})
	must(t, err)
	t.Cleanup(func() { srcStore.Close() })
	srcSrv := httptest.NewServer(srcStore.Handler())
	t.Cleanup(srcSrv.Close)
	srcAddr := strings.TrimPrefix(srcSrv.URL, "http://")
	e := newLocalEnv(t, srcAddr)

	img := blobImage(t, 1, 1000)
	ref, err := name.ParseReference(srcAddr+"/team/app:v1", name.Insecure)
	must(t, err)
	must(t, remote.Write(ref, img))
	h, err := img.Digest()
	must(t, err)
	subject := digest.Digest(h.String())
	sig := pushArtifact(t, srcSrv.URL, "team/app", "application/vnd.example.sig", subject)

	list := func(query string) ([]string, http.Header) {
		t.Helper()
		resp, err := http.Get(e.srv.URL + "/v2/team/app/referrers/" + subject.String() + "?ns=" + srcAddr + query)
		must(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
			t.Fatalf("referrers%s: %s %q %s", query, resp.Status, resp.Header.Get("Content-Type"), body)
		}
		var idx struct{ Manifests []struct{ Digest string } }
		must(t, json.Unmarshal(body, &idx))
		var got []string
		for _, m := range idx.Manifests {
			got = append(got, m.Digest)
		}
		return got, resp.Header
	}
	if got, _ := list(""); len(got) != 1 || got[0] != sig.String() {
		t.Fatalf("referrers from the source: %v, want [%s]", got, sig)
	}
	if got, hdr := list("&artifactType=application/vnd.example.sbom"); len(got) != 0 || hdr.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers: %v (OCI-Filters-Applied %q), want none, filtered", got, hdr.Get("OCI-Filters-Applied"))
	}

	// Mirror the image (a pull copies it), then the target answers: it
	// holds the image and none of its referrers.
	if resp, body := e.get(t, http.MethodGet, srcAddr, "/v2/team/app/manifests/v1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("pull: %s %s", resp.Status, body)
	}
	named, err := reference.ParseNormalizedNamed(srcAddr + "/team/app")
	must(t, err)
	repo, err := e.target.Mapper().Repository(named)
	must(t, err)
	tref, err := name.ParseReference(e.target.Mapper().Host+"/"+repo+"@"+subject.String(), e.target.NameOptions()...)
	must(t, err)
	for i := 0; ; i++ {
		if _, err := remote.Head(tref, remote.WithTransport(e.target.Transport())); err == nil {
			break
		}
		if i > 600 {
			t.Fatal("never copied")
		}
		waitABit()
	}
	// The copy brings the referrer along; one pushed to the source after
	// it is not listed: the target answers.
	for i := 0; ; i++ {
		if got, _ := list(""); len(got) == 1 && got[0] == sig.String() {
			break
		}
		if i > 600 {
			t.Fatal("the referrer never reached the target")
		}
		waitABit()
	}
	late := pushArtifact(t, srcSrv.URL, "team/app", "application/vnd.example.sig", subject)
	if got, _ := list(""); len(got) != 1 || got[0] != sig.String() {
		t.Fatalf("referrers of a mirrored image: %v, want the target's [%s] (not %s, pushed to the source since)", got, sig, late)
	}
}

// pushArtifact puts an artifact manifest (no layers) with subject into
// repo at the registry at base, and returns its digest.
func pushArtifact(t *testing.T, base, repo, artifactType string, subject digest.Digest) digest.Digest {
	t.Helper()
	cfg := []byte("{}")
	cd := digest.FromBytes(cfg)
	resp, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/?digest="+cd.String(), "application/octet-stream", bytes.NewReader(cfg))
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push config: %s", resp.Status)
	}
	m, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  artifactType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": len(cfg)},
		"layers":        []any{},
		"subject":       map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 1},
	})
	must(t, err)
	d := digest.FromBytes(m)
	req, err := http.NewRequest(http.MethodPut, base+"/v2/"+repo+"/manifests/"+d.String(), bytes.NewReader(m))
	must(t, err)
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err = http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("OCI-Subject") != subject.String() {
		t.Fatalf("push artifact: %s, OCI-Subject %q", resp.Status, resp.Header.Get("OCI-Subject"))
	}
	return d
}
