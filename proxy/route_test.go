package proxy

import (
	"testing"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

func TestRoute(t *testing.T) {
	tg, err := target.NewGeneric(target.GenericSpec{Registry: "registry.example.com:5000/mirror"})
	must(t, err)
	p, err := New(Options{Target: tg, Sources: newSources(t, fetch.Options{}), Registries: []string{"docker.io", "ghcr.io", "127.0.0.1:5000", "cache:5000"}, Logger: quiet()})
	must(t, err)
	type want struct {
		targets []string // targetRepo of each plan
		src     string   // source of the last plan
		fb      bool
	}
	for _, c := range []struct {
		ns, name string
		want     *want
	}{
		{"docker.io", "library/nginx", &want{[]string{"mirror/docker.io/library/nginx"}, "docker.io/library/nginx", false}},
		{"index.docker.io", "nginx", &want{[]string{"mirror/docker.io/library/nginx"}, "docker.io/library/nginx", false}},
		{"GHCR.io", "org/app", &want{[]string{"mirror/ghcr.io/org/app"}, "ghcr.io/org/app", false}},
		{"127.0.0.1:5000", "team/app", &want{[]string{"mirror/127.0.0.1_5000/team/app"}, "127.0.0.1:5000/team/app", false}},
		{"quay.io", "org/app", nil},
		{"registry.example.com:5000", "mirror/docker.io/library/nginx",
			&want{[]string{"mirror/docker.io/library/nginx"}, "docker.io/library/nginx", true}},
		{"registry.example.com:5000", "mirror/quay.io/org/app", &want{[]string{"mirror/quay.io/org/app"}, "", true}},
		{"registry.example.com:5000", "other/app", &want{[]string{"other/app"}, "", true}},
		{"", "ghcr.io/org/app", &want{[]string{"mirror/ghcr.io/org/app"}, "ghcr.io/org/app", false}},
		{"", "127.0.0.1_5000/team/app", &want{[]string{"mirror/127.0.0.1_5000/team/app"}, "127.0.0.1:5000/team/app", false}},
		{"", "quay.io/org/app", &want{[]string{"quay.io/org/app"}, "", false}},
		// A host without a dot but with a port, as the copy engine names it.
		{"", "cache_5000/team/app", &want{[]string{"mirror/cache_5000/team/app"}, "cache:5000/team/app", false}},
		{"", "nginx", &want{[]string{"nginx", "mirror/docker.io/library/nginx"}, "docker.io/library/nginx", false}},
		{"", "team/app", &want{[]string{"team/app", "mirror/docker.io/team/app"}, "docker.io/team/app", false}},
		{"", "my_team/app", &want{[]string{"my_team/app", "mirror/docker.io/my_team/app"}, "docker.io/my_team/app", false}},
	} {
		plans, herr := p.route(c.ns, c.name)
		if c.want == nil {
			if he := asHTTPError(herr, ""); herr == nil || he.status != 404 || he.code != codeNameUnknown {
				t.Errorf("ns=%q %s: %+v %v, want 404 NAME_UNKNOWN", c.ns, c.name, plans, herr)
			}
			continue
		}
		if herr != nil || len(plans) != len(c.want.targets) {
			t.Errorf("ns=%q %s: %+v %v", c.ns, c.name, plans, herr)
			continue
		}
		for i, pl := range plans {
			if pl.targetRepo != c.want.targets[i] {
				t.Errorf("ns=%q %s: plan %d in target %q, want %q", c.ns, c.name, i, pl.targetRepo, c.want.targets[i])
			}
		}
		last := plans[len(plans)-1]
		src := ""
		if last.src != nil {
			src = last.src.String()
		}
		if src != c.want.src || last.fallback != c.want.fb {
			t.Errorf("ns=%q %s: source %q fallback %v, want %q %v", c.ns, c.name, src, last.fallback, c.want.src, c.want.fb)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		h           string
		size        int64
		start, end  int64
		partial, ok bool
	}{
		{"", 100, 0, 99, false, true},
		{"bytes=0-9", 100, 0, 9, true, true},
		{"bytes=90-", 100, 90, 99, true, true},
		{"bytes=90-200", 100, 90, 99, true, true},
		{"bytes=-10", 100, 90, 99, true, true},
		{"bytes=-200", 100, 0, 99, true, true},
		{"bytes=100-", 100, 0, 0, false, false},
		{"bytes=-0", 100, 0, 0, false, false},
		{"bytes=5-1", 100, 0, 99, false, true},
		{"bytes=0-1,5-6", 100, 0, 99, false, true},
		{"items=0-1", 100, 0, 99, false, true},
		{"bytes=0-", -1, 0, -2, false, true},
	} {
		s, e, partial, ok := parseRange(c.h, c.size)
		if s != c.start || e != c.end || partial != c.partial || ok != c.ok {
			t.Errorf("%q of %d: %d-%d %v %v, want %d-%d %v %v", c.h, c.size, s, e, partial, ok, c.start, c.end, c.partial, c.ok)
		}
	}
}
