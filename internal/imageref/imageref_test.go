package imageref

import (
	"strings"
	"testing"
)

const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                        "docker.io/library/nginx:latest",
		"nginx:1.27":                   "docker.io/library/nginx:1.27",
		"bitnami/redis":                "docker.io/bitnami/redis:latest",
		"ghcr.io/org/app:v1":           "ghcr.io/org/app:v1",
		"nginx@" + dgst:                "docker.io/library/nginx@" + dgst,
		"nginx:1.27@" + dgst:           "docker.io/library/nginx:1.27@" + dgst,
		"registry.local:5000/team/app": "registry.local:5000/team/app:latest",
		"localhost/app":                "localhost/app:latest",
	} {
		got, err := Parse(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got.String() != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "Nginx", "nginx:", "a b", "nginx@sha256:abc", "-x/y"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestMapping(t *testing.T) {
	m, err := NewMapper("123456789.dkr.ecr.ap-southeast-2.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"nginx":                        "123456789.dkr.ecr.ap-southeast-2.amazonaws.com/docker.io/library/nginx:latest",
		"quay.io/org/app:1@" + dgst:    "123456789.dkr.ecr.ap-southeast-2.amazonaws.com/quay.io/org/app:1@" + dgst,
		"registry.local:5000/team/app": "123456789.dkr.ecr.ap-southeast-2.amazonaws.com/registry.local_5000/team/app:latest",
		"Registry.Local:5000/app:v2":   "123456789.dkr.ecr.ap-southeast-2.amazonaws.com/registry.local_5000/app:v2",
	} {
		src, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		tgt, err := m.ToTarget(src)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if tgt.String() != want {
			t.Errorf("%s: got %s, want %s", in, tgt, want)
		}
		if !m.IsTarget(tgt) || m.IsTarget(src) {
			t.Errorf("%s: IsTarget wrong", in)
		}
		back, err := m.ToSource(tgt)
		if err != nil {
			t.Fatalf("%s: back: %v", in, err)
		}
		if !strings.EqualFold(back.String(), src.String()) {
			t.Errorf("%s: back to %s", in, back)
		}
	}
}

func TestPrefix(t *testing.T) {
	m, err := NewMapper("us-docker.pkg.dev/project/repo")
	if err != nil {
		t.Fatal(err)
	}
	src, _ := Parse("nginx:1")
	repo, _ := m.Repository(src)
	if repo != "project/repo/docker.io/library/nginx" {
		t.Errorf("repository: %s", repo)
	}
	other, _ := Parse("us-docker.pkg.dev/other/repo/x:1")
	if m.IsTarget(other) {
		t.Errorf("a different prefix on the same host is not the target")
	}
	if _, err := m.ToSource(other); err == nil {
		t.Errorf("ToSource of a non-target: want error")
	}
	notMirror, _ := Parse("us-docker.pkg.dev/project/repo/app:1")
	if _, err := m.ToSource(notMirror); err == nil {
		t.Errorf("a target path that is not HOST/PATH: want error")
	}
	for _, bad := range []string{"", "http://x.io", "x.io/UPPER", "x.io:port"} {
		if _, err := NewMapper(bad); err == nil {
			t.Errorf("NewMapper(%q): want error", bad)
		}
	}
}

func TestIPv6Source(t *testing.T) {
	src, err := Parse("[::1]:5000/app:1")
	if err != nil {
		t.Skipf("reference library rejects IPv6 hosts: %v", err)
	}
	m, _ := NewMapper("mirror.example.com")
	if _, err := m.ToTarget(src); err == nil || !strings.Contains(err.Error(), "IPv6") {
		t.Errorf("IPv6 source: got %v", err)
	}
}
