package filter

import (
	"encoding/json"
	"testing"
)

func doc(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMatch(t *testing.T) {
	pod := doc(t, `{"metadata":{"namespace":"kube-system","labels":{"app":"x"}},"spec":{}}`)
	ctr := doc(t, `{"name":"c","image":"docker.io/library/nginx:1"}`)
	cases := []struct {
		name  string
		exprs []string
		want  string
		errs  int
	}{
		{"namespace", []string{"obj.metadata.namespace == 'kube-system'"}, "obj.metadata.namespace == 'kube-system'", 0},
		{"no match", []string{"obj.metadata.namespace == 'default'"}, "", 0},
		{"image prefix", []string{"starts_with(container.image, 'docker.io/library/')"}, "starts_with(container.image, 'docker.io/library/')", 0},
		{"second matches", []string{"obj.metadata.name == 'a'", "container.name == 'c'"}, "container.name == 'c'", 0},
		{"non-boolean is no match", []string{"container.name"}, "", 0},
		{"error counts as no match", []string{"starts_with(container.missing, 'x')", "container.name == 'c'"}, "container.name == 'c'", 1},
		{"label", []string{"obj.metadata.labels.app == 'x'"}, "obj.metadata.labels.app == 'x'", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := New(c.exprs)
			if err != nil {
				t.Fatal(err)
			}
			got, errs := f.Match(pod, ctr)
			if got != c.want || len(errs) != c.errs {
				t.Fatalf("Match = %q, %v; want %q and %d error(s)", got, errs, c.want, c.errs)
			}
		})
	}
}

func TestNewRejectsInvalid(t *testing.T) {
	for _, s := range []string{"", "obj.[", "a ==="} {
		if _, err := New([]string{s}); err == nil {
			t.Errorf("New(%q) gave no error", s)
		}
	}
}

func TestEmpty(t *testing.T) {
	var f *Filter
	if !f.Empty() {
		t.Fatal("nil filter is not empty")
	}
	if got, errs := f.Match(nil, nil); got != "" || errs != nil {
		t.Fatalf("nil filter matched: %q %v", got, errs)
	}
}
