package registry

import "testing"

func TestIsHost(t *testing.T) {
	for s, want := range map[string]bool{
		"docker.io": true, "registry.local:5000": true, "foo:5000": true, "localhost": true, "127.0.0.1": true,
		"library": false, "my_team": false, "": false, "Localhost": false,
	} {
		if got := IsHost(s); got != want {
			t.Errorf("IsHost(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"index.docker.io": "docker.io", "registry-1.docker.io": "docker.io", "Docker.IO": "docker.io",
		"GHCR.io": "ghcr.io", "127.0.0.1:5000": "127.0.0.1:5000",
	} {
		if got := Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseBase(t *testing.T) {
	for in, want := range map[string]Base{
		"registry.example.com":              {Host: "registry.example.com"},
		"registry.example.com/":             {Host: "registry.example.com"},
		"registry.example.com:5000/mirror/": {Host: "registry.example.com:5000", Prefix: "mirror"},
		"localhost/a/b":                     {Host: "localhost", Prefix: "a/b"},
	} {
		got, err := ParseBase(in)
		if err != nil || got != want {
			t.Errorf("ParseBase(%q) = %+v, %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "nohost", "http://x.io", "x.io/UPPER", "x.io:port", "Registry/x"} {
		if b, err := ParseBase(bad); err == nil {
			t.Errorf("ParseBase(%q) = %+v, want an error", bad, b)
		}
	}
	if _, err := ParseHost("x.io/prefix"); err == nil {
		t.Errorf("ParseHost took a prefix")
	}
	if h, err := ParseHost("x.io:5000"); err != nil || h != "x.io:5000" {
		t.Errorf("ParseHost: %q %v", h, err)
	}
}

func TestCloudHosts(t *testing.T) {
	for _, c := range []struct{ account, region, want string }{
		{"123456789012", "eu-west-1", "123456789012.dkr.ecr.eu-west-1.amazonaws.com"},
		{"123456789012", "cn-north-1", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"},
		{"123456789012", "cn-northwest-1", "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn"},
	} {
		if got := ECRHost(c.account, c.region); got != c.want {
			t.Errorf("ECRHost(%s, %s) = %s, want %s", c.account, c.region, got, c.want)
		}
	}
	if got := ArtifactRegistryHost("us-central1"); got != "us-central1-docker.pkg.dev" {
		t.Errorf("ArtifactRegistryHost = %s", got)
	}
	if !IsArtifactRegistry("EUROPE-docker.pkg.dev") || IsArtifactRegistry("docker.pkg.dev") {
		t.Errorf("IsArtifactRegistry")
	}
}
