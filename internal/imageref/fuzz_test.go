package imageref

import (
	"strings"
	"testing"
)

// FuzzMapping: parse + map + reverse-map never panics, and when a source
// maps to the target, mapping back gives the source again (up to the case
// of its host, which DNS ignores).
func FuzzMapping(f *testing.F) {
	for _, s := range []string{"nginx", "nginx:1.27@" + dgst, "registry.local:5000/team/app", "ghcr.io/a/b/c:v1",
		"localhost/x", "a.b/c", "Registry.Local:5000/app:v2", "[::1]:5000/x"} {
		f.Add(s, "mirror.example.com:5000/prefix")
		f.Add(s, "123.dkr.ecr.us-east-1.amazonaws.com")
	}
	f.Fuzz(func(t *testing.T, in, base string) {
		m, err := NewMapper(base)
		if err != nil {
			return
		}
		src, err := Parse(in)
		if err != nil {
			return
		}
		tgt, err := m.ToTarget(src)
		if err != nil {
			return
		}
		if !m.IsTarget(tgt) {
			t.Fatalf("%s -> %s is not a target reference", src, tgt)
		}
		back, err := m.ToSource(tgt)
		if err != nil {
			t.Fatalf("%s -> %s: no way back: %v", src, tgt, err)
		}
		if !strings.EqualFold(back.String(), src.String()) {
			t.Fatalf("%s -> %s -> %s", src, tgt, back)
		}
		if Tag(back) != Tag(src) || Digest(back) != Digest(src) {
			t.Fatalf("tag or digest lost: %s -> %s", src, back)
		}
	})
}
