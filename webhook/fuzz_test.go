package webhook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	sigjson "sigs.k8s.io/json"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/filter"
)

// FuzzAdmissionReview feeds arbitrary bodies to the handler: it must never
// panic, must answer 200 or 400, must allow every review it answers, and any
// patch must be a JSON Patch that applies to the object it came with.
func FuzzAdmissionReview(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[null,{"image":"nginx"}]}}}}`))

	flt := filter.New([]string{"obj.metadata.namespace == 'kube-system'", "contains(container.image, 'skip')"})
	h, _ := newTestHandler(f, inTarget, func(o *Options) { o.Filter = flt })
	f.Fuzz(func(t *testing.T, body []byte) {
		w := post(h, body, "")
		switch w.Code {
		case 400:
			return
		case 200:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		a := decodeAnswer(t, w.Body.Bytes())
		if !a.Response.Allowed {
			t.Fatalf("review not allowed: %s", w.Body)
		}
		if a.Response.Patch == nil {
			return
		}
		var r struct {
			Request struct {
				Object json.RawMessage `json:"object"`
			} `json:"request"`
		}
		// The object as the API server holds it: exact field names.
		if err := sigjson.UnmarshalCaseSensitivePreserveInts(body, &r); err != nil {
			t.Fatalf("answered 200 with a patch to a body that is not JSON: %v", err)
		}
		p, err := jsonpatch.DecodePatch(a.Response.Patch)
		if err != nil {
			t.Fatalf("patch is not a JSON Patch: %v: %s", err, a.Response.Patch)
		}
		if _, err := p.Apply(r.Request.Object); err != nil {
			t.Fatalf("patch %s does not apply to %s: %v", a.Response.Patch, r.Request.Object, err)
		}
	})
}
