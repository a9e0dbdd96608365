package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
)

// fakeMirror stands in for the copy engine: it knows which images the
// target has and records the copies asked for.
type fakeMirror struct {
	mu        sync.Mutex
	present   map[string]bool
	copies    []string // "policy image"
	existsErr error
	copyErr   error
	keychains int // copies that carried a pod keychain
}

func (f *fakeMirror) Exists(_ context.Context, src reference.Named) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.existsErr != nil {
		return false, f.existsErr
	}
	return f.present[src.String()], nil
}

func (f *fakeMirror) Mirror(_ context.Context, how policy.Copy, _ time.Duration, req mirror.Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copies = append(f.copies, string(how)+" "+req.Source.String())
	if req.Keychain != nil {
		f.keychains++
	}
	if f.copyErr != nil {
		return f.copyErr
	}
	if how == policy.CopyImmediate || how == policy.CopyForce {
		f.present[req.Source.String()] = true
	}
	return nil
}

func (f *fakeMirror) Copies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.copies)
	slices.Sort(out)
	return out
}

const testTarget = "target.example.com"

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestHandler(t testing.TB, present []string, edit func(*Options)) (*Handler, *fakeMirror) {
	t.Helper()
	m, err := imageref.NewMapper(testTarget)
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMirror{present: map[string]bool{}}
	for _, p := range present {
		fm.present[p] = true
	}
	o := Options{Mirror: fm, Mapper: m, SwapPolicy: policy.SwapExists, CopyPolicy: policy.CopyDelayed,
		Access: &fakeAccess{}, Logger: quietLogger()}
	if edit != nil {
		edit(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h, fm
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(h http.Handler, body []byte, query string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/webhook"+query, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// answer is the part of an AdmissionReview response the tests look at.
type answer struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Response   *struct {
		UID       string  `json:"uid"`
		Allowed   bool    `json:"allowed"`
		Patch     []byte  `json:"patch"`
		PatchType *string `json:"patchType"`
	} `json:"response"`
}

func decodeAnswer(t testing.TB, body []byte) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, body)
	}
	if a.Response == nil {
		t.Fatalf("answer has no response: %s", body)
	}
	return a
}

// applyPatch applies an answer's patch to the review's object, as the API
// server does, and returns the images by list and index.
func applyPatch(object, patch []byte) (map[string][]string, error) {
	out := object
	if len(patch) > 0 {
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, err
		}
		if out, err = p.Apply(object); err != nil {
			return nil, err
		}
	}
	type ctr struct {
		Image string `json:"image"`
	}
	var pod struct {
		Spec struct {
			InitContainers      []ctr `json:"initContainers"`
			Containers          []ctr `json:"containers"`
			EphemeralContainers []ctr `json:"ephemeralContainers"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &pod); err != nil {
		return nil, errors.New("patched object is not a pod: " + err.Error())
	}
	images := map[string][]string{}
	for list, cs := range map[string][]ctr{"initContainers": pod.Spec.InitContainers,
		"containers": pod.Spec.Containers, "ephemeralContainers": pod.Spec.EphemeralContainers} {
		for _, c := range cs {
			images[list] = append(images[list], c.Image)
		}
	}
	return images, nil
}

func requestObject(t testing.TB, body []byte) []byte {
	t.Helper()
	var r struct {
		Request struct {
			Object json.RawMessage `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r.Request.Object
}
