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
		err   bool
	}{
		{"namespace", []string{"obj.metadata.namespace == 'kube-system'"}, "obj.metadata.namespace == 'kube-system'", false},
		{"no match", []string{"obj.metadata.namespace == 'default'"}, "", false},
		{"image prefix", []string{"starts_with(container.image, 'docker.io/library/')"}, "starts_with(container.image, 'docker.io/library/')", false},
		{"second matches", []string{"obj.metadata.name == 'a'", "container.name == 'c'"}, "container.name == 'c'", false},
		{"non-boolean is no match", []string{"container.name"}, "", false},
		// The original's rule: an expression that errors is "not filtered"
		// and ends the evaluation; the one after it is not reached.
		{"error stops, not filtered", []string{"starts_with(container.missing, 'x')", "container.name == 'c'"}, "", true},
		{"match before an error", []string{"container.name == 'c'", "starts_with(container.missing, 'x')"}, "container.name == 'c'", false},
		{"invalid expression stops too", []string{"obj.[", "container.name == 'c'"}, "", true},
		{"empty expression stops too", []string{" ", "container.name == 'c'"}, "", true},
		{"label", []string{"obj.metadata.labels.app == 'x'"}, "obj.metadata.labels.app == 'x'", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := New(c.exprs).Match(pod, ctr)
			if got != c.want || (err != nil) != c.err {
				t.Fatalf("Match = %q, %v; want %q and error %t", got, err, c.want, c.err)
			}
		})
	}
}

// Invalid expressions are kept (the config warned about them, with Check)
// and fail where they are reached.
func TestInvalid(t *testing.T) {
	for _, bad := range []string{"obj.[", "a ==="} {
		if Check(bad) == nil {
			t.Errorf("Check(%q): no error", bad)
		}
		if _, err := New([]string{bad, "container.name == 'c'"}).Match(nil, map[string]any{"name": "c"}); err == nil {
			t.Errorf("%q was not kept: Match went on past it", bad)
		}
	}
	if err := Check("container.name == 'c'"); err != nil {
		t.Fatalf("a valid expression: %v", err)
	}
	if _, err := New([]string{""}).Match(nil, nil); err == nil {
		t.Error("an empty expression was not kept")
	}
}

func TestEmpty(t *testing.T) {
	var f *Filter
	if !f.Empty() {
		t.Fatal("nil filter is not empty")
	}
	if got, err := f.Match(nil, nil); got != "" || err != nil {
		t.Fatalf("nil filter matched: %q %v", got, err)
	}
}
