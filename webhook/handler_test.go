package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/filter"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
)

const digest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// Images the fake target holds unless a case says otherwise.
var inTarget = []string{
	"docker.io/library/nginx:latest",
	"docker.io/library/nginx:1.25@" + digest,
	"docker.io/library/busybox:1.36",
	"ghcr.io/org/app:v1",
}

func TestRecordedReviews(t *testing.T) {
	cases := []struct {
		file    string
		present []string // images in the target; default inTarget
		edit    func(*Options)
		status  int
		version string
		images  map[string][]string // after the patch; nil: no patch expected
		copies  []string
	}{
		{file: "simple-pod.json", status: 200,
			images: map[string][]string{"containers": {testTarget + "/docker.io/library/nginx:latest"}}},
		{file: "init-ephemeral.json", status: 200,
			images: map[string][]string{
				"initContainers":      {testTarget + "/docker.io/library/busybox:1.36"},
				"containers":          {testTarget + "/ghcr.io/org/app:v1", testTarget + "/docker.io/library/nginx:latest"},
				"ephemeralContainers": {"debian:12"}, // missing: kept, copy queued
			},
			copies: []string{"delayed docker.io/library/debian:12"}},
		{file: "tag-digest.json", status: 200,
			images: map[string][]string{"containers": {testTarget + "/docker.io/library/nginx:1.25@" + digest}}},
		{file: "already-target.json", status: 200},
		{file: "filtered-namespace.json", status: 200, edit: func(o *Options) {
			o.Filter = mustFilter(t, "obj.metadata.namespace == 'kube-system'")
		}},
		{file: "simple-pod.json", status: 200, edit: func(o *Options) { // a filter on the container
			o.Filter = mustFilter(t, "starts_with(container.image, 'nginx')")
		}},
		// A filter that errors: not filtered, and the one after it (which
		// would match) is not evaluated, as in the original.
		{file: "simple-pod.json", status: 200, edit: func(o *Options) {
			o.Filter = filter.New([]string{"starts_with(container.missing, 'x')", "starts_with(container.image, 'nginx')"})
		}, images: map[string][]string{"containers": {testTarget + "/docker.io/library/nginx:latest"}}},
		{file: "simple-pod.json", status: 200, edit: func(o *Options) { o.DryRun = true }},
		{file: "missing-image.json", status: 200, edit: func(o *Options) { o.DryRun = true }},
		{file: "dry-run-request.json", status: 200, // API server dry run: patched, nothing copied
			images: map[string][]string{"containers": {testTarget + "/docker.io/library/nginx:latest", "quay.io/org/missing:1"}}},
		{file: "malformed.json", status: 400},
		{file: "no-request.json", status: 400},
		{file: "wrong-version.json", status: 400},
		{file: "deployment.json", status: 200},
		{file: "v1beta1.json", status: 200, version: versionV1beta1,
			images: map[string][]string{"containers": {testTarget + "/docker.io/library/nginx:latest"}}},
		{file: "ephemeral-subresource.json", status: 200, // only the new ephemeral container
			images: map[string][]string{
				"containers":          {"nginx"},
				"ephemeralContainers": {"busybox:1.36", testTarget + "/docker.io/library/busybox:1.36"},
			}},
		{file: "skip-label.json", status: 200},
		{file: "skip-annotation.json", status: 200},
		{file: "invalid-image.json", status: 200,
			images: map[string][]string{"containers": {"UPPER/Case::tag", "", testTarget + "/docker.io/library/nginx:latest"}}},
		{file: "missing-image.json", status: 200, copies: []string{"delayed quay.io/org/missing:1"}},
		{file: "missing-image.json", status: 200, edit: func(o *Options) { o.CopyPolicy = policy.CopyNone }},
		{file: "missing-image.json", status: 200, edit: func(o *Options) { o.CopyPolicy = policy.CopyImmediate },
			images: map[string][]string{"containers": {testTarget + "/quay.io/org/missing:1"}},
			copies: []string{"immediate quay.io/org/missing:1"}},
		{file: "missing-image.json", status: 200, edit: func(o *Options) { o.CopyPolicy = policy.CopyForce },
			images: map[string][]string{"containers": {testTarget + "/quay.io/org/missing:1"}},
			copies: []string{"force quay.io/org/missing:1"}},
		{file: "missing-image.json", status: 200, edit: func(o *Options) { o.SwapPolicy = policy.SwapAlways; o.CopyPolicy = policy.CopyForce },
			images: map[string][]string{"containers": {testTarget + "/quay.io/org/missing:1"}},
			copies: []string{"force quay.io/org/missing:1"}},
		{file: "simple-pod.json", status: 200, edit: func(o *Options) { o.SwapPolicy = policy.SwapAlways; o.CopyPolicy = policy.CopyForce },
			images: map[string][]string{"containers": {testTarget + "/docker.io/library/nginx:latest"}}}, // present: no copy
		// Pods on UPDATE (the original chart registers it): decided as on
		// CREATE, for the images the update changes only.
		{file: "pod-update.json", status: 200},
		{file: "pod-update-image.json", status: 200,
			images: map[string][]string{
				"initContainers": {"ghcr.io/org/app:v1"},
				"containers":     {"nginx", testTarget + "/docker.io/library/busybox:1.36"},
			}},
		// imagePullPolicy: Always re-copies an image the target has (the copy
		// resolves the tag and writes only when it moved), with the copy
		// policy; at most once per tagTTL (TestPullAlwaysOncePerTagTTL).
		{file: "pull-always.json", status: 200, edit: func(o *Options) { o.CopyPolicy = policy.CopyForce },
			images: map[string][]string{"containers": {testTarget + "/docker.io/library/nginx:latest"}},
			copies: []string{"force docker.io/library/nginx:latest"}},
		{file: "pull-always.json", status: 200, edit: func(o *Options) { o.SwapPolicy = policy.SwapAlways; o.CopyPolicy = policy.CopyImmediate },
			images: map[string][]string{"containers": {testTarget + "/docker.io/library/nginx:latest"}},
			copies: []string{"immediate docker.io/library/nginx:latest"}},
		{file: "pull-always.json", status: 200, edit: func(o *Options) { o.CopyPolicy = policy.CopyNone },
			images: map[string][]string{"containers": {testTarget + "/docker.io/library/nginx:latest"}}},
		{file: "pull-always.json", status: 200, edit: func(o *Options) { o.DryRun = true }},
		// Recorded from kube-apiserver v1.37.2: a pod create, and kubectl
		// debug adding a second ephemeral container.
		{file: "recorded-create.json", status: 200,
			images: map[string][]string{
				"initContainers": {testTarget + "/docker.io/library/busybox:1.36"},
				"containers":     {"nginx:1.25", testTarget + "/ghcr.io/org/app:v1"},
			},
			copies: []string{"delayed docker.io/library/nginx:1.25"}},
		{file: "recorded-kubectl-debug.json", status: 200, // debian:12 missing: no patch, a copy
			copies: []string{"delayed docker.io/library/debian:12"}},
		{file: "recorded-kubectl-debug.json", status: 200, present: append([]string{"docker.io/library/debian:12"}, inTarget...),
			images: map[string][]string{"ephemeralContainers": {"busybox:1.36", testTarget + "/docker.io/library/debian:12"}}},
		{file: "empty-pod.json", status: 200},
		{file: "not-an-object.json", status: 200},
		{file: "array-object.json", status: 200},
		{file: "same-image-twice.json", status: 200,
			images: map[string][]string{"containers": {
				testTarget + "/docker.io/library/nginx:latest", testTarget + "/docker.io/library/nginx:latest",
				testTarget + "/docker.io/library/nginx:latest"}}},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
			present := inTarget
			if c.present != nil {
				present = c.present
			}
			h, fm := newTestHandler(t, present, c.edit)
			body := readTestdata(t, c.file)
			w := post(h, body, "?timeout=10s")
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if got := fm.Copies(); !slices.Equal(got, c.copies) {
				t.Errorf("copies %q, want %q", got, c.copies)
			}
			if c.status != 200 {
				return
			}
			a := decodeAnswer(t, w.Body.Bytes())
			want := c.version
			if want == "" {
				want = versionV1
			}
			if a.APIVersion != want || a.Kind != "AdmissionReview" {
				t.Errorf("answered %s %s, want %s AdmissionReview", a.APIVersion, a.Kind, want)
			}
			var req struct {
				Request struct{ UID string } `json:"request"`
			}
			_ = json.Unmarshal(body, &req)
			if a.Response.UID != req.Request.UID || !a.Response.Allowed {
				t.Errorf("response uid %q allowed %t, want uid %q allowed", a.Response.UID, a.Response.Allowed, req.Request.UID)
			}
			if c.images == nil {
				if a.Response.Patch != nil || a.Response.PatchType != nil {
					t.Fatalf("unexpected patch %s", a.Response.Patch)
				}
				return
			}
			if a.Response.PatchType == nil || *a.Response.PatchType != "JSONPatch" {
				t.Errorf("patchType %v, want JSONPatch", a.Response.PatchType)
			}
			var ops []patchOp
			if err := json.Unmarshal(a.Response.Patch, &ops); err != nil {
				t.Fatal(err)
			}
			for _, op := range ops {
				if op.Op != "replace" || !strings.HasSuffix(op.Path, "/image") {
					t.Errorf("patch op %+v is not a replace of an image", op)
				}
			}
			got, err := applyPatch(requestObject(t, body), a.Response.Patch)
			if err != nil {
				t.Fatalf("patch %s does not apply: %v", a.Response.Patch, err)
			}
			for list, images := range c.images {
				if !slices.Equal(got[list], images) {
					t.Errorf("%s images %q, want %q", list, got[list], images)
				}
			}
		})
	}
}

func mustFilter(t *testing.T, exprs ...string) *filter.Filter {
	t.Helper()
	for _, e := range exprs {
		if err := filter.Check(e); err != nil {
			t.Fatal(err)
		}
	}
	return filter.New(exprs)
}

func TestOnePatchPerChangedImage(t *testing.T) {
	h, _ := newTestHandler(t, inTarget, nil)
	a := decodeAnswer(t, post(h, readTestdata(t, "init-ephemeral.json"), "").Body.Bytes())
	var ops []patchOp
	if err := json.Unmarshal(a.Response.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	want := []patchOp{
		{"replace", "/spec/initContainers/0/image", testTarget + "/docker.io/library/busybox:1.36"},
		{"replace", "/spec/containers/0/image", testTarget + "/ghcr.io/org/app:v1"},
		{"replace", "/spec/containers/1/image", testTarget + "/docker.io/library/nginx:latest"},
	}
	if !slices.Equal(ops, want) {
		t.Fatalf("patch %+v\nwant  %+v", ops, want)
	}
}

func TestExistsErrorKeepsImage(t *testing.T) {
	h, fm := newTestHandler(t, inTarget, nil)
	fm.existsErr = errors.New("target down")
	w := post(h, readTestdata(t, "simple-pod.json"), "")
	a := decodeAnswer(t, w.Body.Bytes())
	if w.Code != 200 || !a.Response.Allowed || a.Response.Patch != nil {
		t.Fatalf("want allowed and unchanged, got %d %s", w.Code, w.Body)
	}
	// The copy is queued anyway: the trouble may pass.
	if got := fm.Copies(); !slices.Equal(got, []string{"delayed docker.io/library/nginx:latest"}) {
		t.Fatalf("copies %q", got)
	}
}

func TestCopyFailureKeepsImage(t *testing.T) {
	h, fm := newTestHandler(t, nil, func(o *Options) { o.CopyPolicy = policy.CopyImmediate })
	fm.copyErr = errors.New("deadline exceeded")
	a := decodeAnswer(t, post(h, readTestdata(t, "missing-image.json"), "").Body.Bytes())
	if !a.Response.Allowed || a.Response.Patch != nil {
		t.Fatalf("want allowed and unchanged, got %+v", a.Response)
	}
}

func TestAlwaysDelayedChecksInBackground(t *testing.T) {
	h, fm := newTestHandler(t, nil, func(o *Options) { o.SwapPolicy = policy.SwapAlways })
	body := readTestdata(t, "missing-image.json")
	a := decodeAnswer(t, post(h, body, "").Body.Bytes())
	got, err := applyPatch(requestObject(t, body), a.Response.Patch)
	if err != nil || got["containers"][0] != testTarget+"/quay.io/org/missing:1" {
		t.Fatalf("always did not swap: %v %v", got, err)
	}
	waitFor(t, func() bool { return len(fm.Copies()) == 1 })
	if c := fm.Copies(); c[0] != "delayed quay.io/org/missing:1" {
		t.Fatalf("copies %q", c)
	}
}

func TestPullSecretsGoWithCopies(t *testing.T) {
	ks := &fakeKeychains{}
	h, fm := newTestHandler(t, nil, func(o *Options) { o.PullSecrets = ks })
	post(h, readTestdata(t, "init-ephemeral.json"), "")
	post(h, readTestdata(t, "same-image-twice.json"), "")
	if fm.keychains != 5 {
		t.Errorf("%d copies carried the pod keychain, want 5", fm.keychains)
	}
	if ks.calls != 2 || ks.last != "apps [] default" {
		t.Errorf("keychain asked %d times, last %q; want once per pod", ks.calls, ks.last)
	}
}

func TestBodyLimitAndMethod(t *testing.T) {
	h, _ := newTestHandler(t, inTarget, nil)
	big := bytes.Repeat([]byte(" "), maxBodyBytes+1)
	if w := post(h, big, ""); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("body over 10 MiB: status %d, want 413", w.Code)
	}
	r := httptest.NewRequest(http.MethodGet, "/webhook", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", w.Code)
	}
}

func TestBudget(t *testing.T) {
	for in, want := range map[string]string{"": "9s", "10s": "9s", "30s": "29s", "2s": "1.6s", "1s": "800ms", "x": "9s", "-5s": "9s"} {
		if got := budget(in).String(); got != want {
			t.Errorf("budget(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestNewChecksOptions(t *testing.T) {
	for _, edit := range []func(*Options){
		func(o *Options) { o.Mirror = nil },
		func(o *Options) { o.SwapPolicy = "sometimes" },
		func(o *Options) { o.CopyPolicy = "later" },
	} {
		m, _ := newTestHandler(t, nil, nil)
		o := m.o
		edit(&o)
		if _, err := New(o); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
}

type panickyMirror struct{ fakeMirror }

func (p *panickyMirror) Exists(context.Context, reference.Named) (bool, error) { panic("boom") }

func TestPanicLeavesPodUnchanged(t *testing.T) {
	for _, file := range []string{"simple-pod.json", "init-ephemeral.json"} { // one image, and several at once
		h, _ := newTestHandler(t, nil, func(o *Options) { o.Mirror = &panickyMirror{} })
		w := post(h, readTestdata(t, file), "")
		a := decodeAnswer(t, w.Body.Bytes())
		if w.Code != 200 || !a.Response.Allowed || a.Response.Patch != nil {
			t.Fatalf("%s: want allowed and unchanged, got %d %s", file, w.Code, w.Body)
		}
	}
}

// A body the API server would not send is read its way or refused, never
// guessed at: a patch must fit the object the API server holds.
func TestAmbiguousBodies(t *testing.T) {
	h, _ := newTestHandler(t, inTarget, nil)
	const head = `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE",`
	cases := map[string]struct {
		body  string
		code  int
		patch bool
	}{
		"duplicate object":          {head + `"object":{"spec":{"containers":[{"image":"nginx"}]}},"object":null}}`, 400, false},
		"duplicate field in pod":    {head + `"object":{"spec":{"containers":[{"image":"nginx","image":"busybox"}]}}}}`, 200, false},
		"miscased object key":       {head + `"Object":{"spec":{"containers":[{"image":"nginx"}]}}}}`, 200, false},
		"miscased image key":        {head + `"object":{"spec":{"containers":[{"Image":"nginx"}]}}}}`, 200, false},
		"miscased apiVersion":       {`{"kind":"AdmissionReview","ApiVersion":"admission.k8s.io/v1","request":{}}`, 400, false},
		"canonical, for comparison": {head + `"object":{"spec":{"containers":[{"image":"nginx"}]}}}}`, 200, true},
	}
	for name, c := range cases {
		w := post(h, []byte(c.body), "")
		if w.Code != c.code {
			t.Errorf("%s: status %d, want %d: %s", name, w.Code, c.code, w.Body)
			continue
		}
		if c.code == 200 {
			if a := decodeAnswer(t, w.Body.Bytes()); (a.Response.Patch != nil) != c.patch {
				t.Errorf("%s: patch %s, want patch %t", name, a.Response.Patch, c.patch)
			}
		}
	}
}

// The webhook's defaults, as README documents them.
func TestDefaults(t *testing.T) {
	h, _ := newTestHandler(t, nil, func(o *Options) { o.SwapPolicy, o.CopyPolicy = "", "" })
	if o := h.o; o.SwapPolicy != policy.SwapExists || o.CopyPolicy != policy.CopyDelayed ||
		o.CopyDeadline != 8*time.Second || o.TagTTL != 5*time.Minute {
		t.Errorf("defaults: %+v", o)
	}
}
