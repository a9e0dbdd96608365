package target

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"
)

func openLocal(t *testing.T, dir string) *Local {
	t.Helper()
	l, err := NewLocal(context.Background(), LocalSpec{Path: dir, Registry: "127.0.0.1:7439"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// call sends one request to the store's client-facing API.
func call(t *testing.T, h http.Handler, method, path string, body []byte, contentType string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "http://127.0.0.1:7439"+path, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	r.Header.Set("Accept", acceptAll)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// pushBlob uploads b in one POST (the spec's single-request upload).
func pushBlob(t *testing.T, h http.Handler, repo string, b []byte, d digest.Digest) {
	t.Helper()
	w := call(t, h, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b, "application/octet-stream")
	if w.Code != http.StatusCreated {
		t.Fatalf("POST blob %s to %s: %d %s", d, repo, w.Code, w.Body)
	}
	if got := w.Header().Get("Docker-Content-Digest"); got != d.String() {
		t.Fatalf("POST blob: Docker-Content-Digest %q, want %q", got, d)
	}
}

// pushManifest puts m by ref and returns its digest and the answer.
func pushManifest(t *testing.T, h http.Handler, repo, ref string, m any) (digest.Digest, *httptest.ResponseRecorder) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	w := call(t, h, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, b, mediaTypeManifest)
	if w.Code != http.StatusCreated {
		t.Fatalf("PUT manifest %s:%s: %d %s", repo, ref, w.Code, w.Body)
	}
	return digest.FromBytes(b), w
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

func listReferrers(t *testing.T, h http.Handler, repo string, subject digest.Digest, query string) (index, http.Header) {
	t.Helper()
	w := call(t, h, http.MethodGet, "/v2/"+repo+"/referrers/"+subject.String()+query, nil, "")
	if w.Code != http.StatusOK {
		t.Fatalf("referrers of %s: %d %s", subject, w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != mediaTypeIndex {
		t.Fatalf("referrers Content-Type %q, want %q", ct, mediaTypeIndex)
	}
	var idx index
	if err := json.Unmarshal(w.Body.Bytes(), &idx); err != nil {
		t.Fatal(err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != mediaTypeIndex || idx.Manifests == nil {
		t.Fatalf("referrers of %s: not an image index: %s", subject, w.Body)
	}
	return idx, w.Header()
}

// image pushes an image manifest (config and one layer) with an optional
// subject and artifactType.
func image(t *testing.T, h http.Handler, repo, ref, artifactType string, subject *descriptor) (digest.Digest, *httptest.ResponseRecorder) {
	t.Helper()
	config := []byte("{}")
	layer := []byte("layer of " + ref + artifactType)
	pushBlob(t, h, repo, config, digest.FromBytes(config))
	pushBlob(t, h, repo, layer, digest.FromBytes(layer))
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: digest.FromBytes(config), Size: int64(len(config))},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digest.FromBytes(layer), Size: int64(len(layer))}},
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
		m["annotations"] = map[string]string{"org.example": artifactType}
	}
	if subject != nil {
		m["subject"] = subject
	}
	return pushManifest(t, h, repo, ref, m)
}

// The referrers API: a manifest with a subject is answered with
// OCI-Subject and listed, with its artifactType and annotations, filtered
// by artifactType on request; an unknown digest has an empty index (200);
// the listing survives a restart and follows a manifest delete.
func TestReferrers(t *testing.T) {
	dir := t.TempDir()
	h := openLocal(t, dir).Handler()
	const repo = "team/app"
	subj, w := image(t, h, repo, "v1", "", nil)
	if v := w.Header().Get("OCI-Subject"); v != "" {
		t.Fatalf("a manifest without subject got OCI-Subject %q", v)
	}
	sd := &descriptor{MediaType: mediaTypeManifest, Digest: subj, Size: 100}
	sig, w := image(t, h, repo, "sig", "application/vnd.example.sig", sd)
	if v := w.Header().Get("OCI-Subject"); v != subj.String() {
		t.Fatalf("OCI-Subject %q, want %q", v, subj)
	}
	sbom, _ := image(t, h, repo, "sbom", "application/vnd.example.sbom", sd)

	idx, hdr := listReferrers(t, h, repo, subj, "")
	if len(idx.Manifests) != 2 || hdr.Get("OCI-Filters-Applied") != "" {
		t.Fatalf("referrers: %+v (filters %q), want 2 unfiltered", idx.Manifests, hdr.Get("OCI-Filters-Applied"))
	}
	for _, d := range idx.Manifests {
		if d.MediaType != mediaTypeManifest || d.Size == 0 || d.Annotations["org.example"] != d.ArtifactType {
			t.Fatalf("referrer descriptor %+v", d)
		}
	}
	idx, hdr = listReferrers(t, h, repo, subj, "?artifactType=application/vnd.example.sig")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sig || hdr.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers: %+v (filters %q), want only %s", idx.Manifests, hdr.Get("OCI-Filters-Applied"), sig)
	}
	if idx, _ := listReferrers(t, h, repo, digest.FromString("nothing"), ""); len(idx.Manifests) != 0 {
		t.Fatalf("referrers of an unknown digest: %+v, want none", idx.Manifests)
	}

	h = openLocal(t, dir).Handler() // a restart keeps them
	if idx, _ := listReferrers(t, h, repo, subj, ""); len(idx.Manifests) != 2 {
		t.Fatalf("referrers after a restart: %+v, want 2", idx.Manifests)
	}
	if w := call(t, h, http.MethodDelete, "/v2/"+repo+"/manifests/"+sbom.String(), nil, ""); w.Code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if idx, _ := listReferrers(t, h, repo, subj, ""); len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sig {
		t.Fatalf("referrers after a delete: %+v, want only %s", idx.Manifests, sig)
	}
}

// Content named by sha512: blobs and manifests answer under that digest.
func TestSHA512(t *testing.T) {
	h := openLocal(t, t.TempDir()).Handler()
	sum := func(b []byte) digest.Digest {
		s := sha512.Sum512(b)
		return digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(s[:]))
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	pushBlob(t, h, "team/a", config, sum(config))
	if w := call(t, h, http.MethodHead, "/v2/team/a/blobs/"+sum(config).String(), nil, ""); w.Code != http.StatusOK || w.Header().Get("Docker-Content-Digest") != sum(config).String() {
		t.Fatalf("HEAD sha512 blob: %d %q", w.Code, w.Header().Get("Docker-Content-Digest"))
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaTypeManifest,
		"config": descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: sum(config), Size: int64(len(config))}, "layers": []descriptor{}})
	d := sum(m)
	w := call(t, h, http.MethodPut, "/v2/team/a/manifests/"+d.String(), m, mediaTypeManifest)
	if w.Code != http.StatusCreated || w.Header().Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("PUT sha512 manifest: %d %q %s", w.Code, w.Header().Get("Docker-Content-Digest"), w.Body)
	}
	w = call(t, h, http.MethodGet, "/v2/team/a/manifests/"+d.String(), nil, "")
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), m) || w.Header().Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("GET sha512 manifest: %d %q", w.Code, w.Header().Get("Docker-Content-Digest"))
	}
	bad := call(t, h, http.MethodPut, "/v2/team/a/manifests/"+sum([]byte("other")).String(), m, mediaTypeManifest)
	if bad.Code != http.StatusBadRequest {
		t.Fatalf("PUT under a wrong sha512: %d, want 400", bad.Code)
	}
}

// An anonymous mount (no from) mounts from a pushed repository, never from
// a mirror: a mirrored blob may be private.
func TestAnonymousMount(t *testing.T) {
	h := openLocal(t, t.TempDir()).Handler()
	pushed, mirrored := []byte("pushed"), []byte("mirrored")
	pushBlob(t, h, "team/a", pushed, digest.FromBytes(pushed))
	pushBlob(t, h, "docker.io/library/private", mirrored, digest.FromBytes(mirrored))
	if w := call(t, h, http.MethodPost, "/v2/team/b/blobs/uploads/?mount="+digest.FromBytes(pushed).String(), nil, ""); w.Code != http.StatusCreated {
		t.Fatalf("anonymous mount of a pushed blob: %d %s, want 201", w.Code, w.Body)
	}
	if w := call(t, h, http.MethodPost, "/v2/team/b/blobs/uploads/?mount="+digest.FromBytes(mirrored).String(), nil, ""); w.Code != http.StatusAccepted {
		t.Fatalf("anonymous mount of a mirrored blob: %d, want 202 (an upload)", w.Code)
	}
}

// A mount by sha512 is found by that digest in the repository it went to.
func TestSHA512Mount(t *testing.T) {
	h := openLocal(t, t.TempDir()).Handler()
	b := []byte("a sha512 blob")
	s := sha512.Sum512(b)
	d := digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(s[:]))
	pushBlob(t, h, "team/a", b, d)
	w := call(t, h, http.MethodPost, "/v2/team/b/blobs/uploads/?from=team/a&mount="+d.String(), nil, "")
	if w.Code != http.StatusCreated || w.Header().Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("mount by sha512: %d %q %s", w.Code, w.Header().Get("Docker-Content-Digest"), w.Body)
	}
	w = call(t, h, http.MethodGet, w.Header().Get("Location"), nil, "")
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), b) {
		t.Fatalf("GET the mounted blob: %d %s", w.Code, w.Body)
	}
}

// A manifest put by digest with ?tag= parameters is tagged by each, as
// OCI-Tag says; a bad tag refuses the put.
func TestTagParameters(t *testing.T) {
	h := openLocal(t, t.TempDir()).Handler()
	d, _ := image(t, h, "team/a", "plain", "", nil)
	m := call(t, h, http.MethodGet, "/v2/team/a/manifests/"+d.String(), nil, "").Body.Bytes()
	w := call(t, h, http.MethodPut, "/v2/team/a/manifests/"+d.String()+"?tag=v1&tag=latest", m, mediaTypeManifest)
	if w.Code != http.StatusCreated || len(w.Header().Values("OCI-Tag")) != 2 {
		t.Fatalf("PUT with tags: %d, OCI-Tag %q %s", w.Code, w.Header().Values("OCI-Tag"), w.Body)
	}
	for _, tag := range []string{"v1", "latest"} {
		if w := call(t, h, http.MethodHead, "/v2/team/a/manifests/"+tag, nil, ""); w.Code != http.StatusOK || w.Header().Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("HEAD %s: %d %q, want %s", tag, w.Code, w.Header().Get("Docker-Content-Digest"), d)
		}
	}
	if w := call(t, h, http.MethodPut, "/v2/team/a/manifests/"+d.String()+"?tag=-bad", m, mediaTypeManifest); w.Code != http.StatusBadRequest {
		t.Fatalf("PUT with a bad tag: %d, want 400", w.Code)
	}
}
