package aws_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
)

func mustNamed(t *testing.T, m imageref.Mapper, src string) reference.Named {
	t.Helper()
	r, err := imageref.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.ToTarget(r)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func reindent(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(s), "", "\t"); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}
