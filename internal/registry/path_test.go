package registry

import "testing"

func TestParsePath(t *testing.T) {
	d := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for path, want := range map[string]*Path{
		"/v2/library/nginx/manifests/1.27":       {Repo: "library/nginx", Kind: Manifests, Ref: "1.27"},
		"/v2/a/b/c/blobs/" + d:                   {Repo: "a/b/c", Kind: Blobs, Ref: d},
		"/v2/blobs/blobs/blobs/" + d:             {Repo: "blobs/blobs", Kind: Blobs, Ref: d},
		"/v2/docker.io/library/x/manifests/" + d: {Repo: "docker.io/library/x", Kind: Manifests, Ref: d},
		"/v2/127.0.0.1_5000/x/manifests/latest":  {Repo: "127.0.0.1_5000/x", Kind: Manifests, Ref: "latest"},
		"/v2/x/blobs/latest":                     nil, // a blob needs a digest
		"/v2/x/blobs/uploads/":                   nil,
		"/v2/x/blobs/uploads/abc":                nil,
		"/v2/X/manifests/latest":                 nil,
		"/v2/x/tags/list":                        nil,
		"/v2/127.0.0.1:5000/x/manifests/latest":  nil,
		"/v2/x/manifests/" + "-bad":              nil,
		"/v2/x/manifests/sha256:abc":             nil,
		"/v2/../x/manifests/latest":              nil,
		"/v2/x/manifests/a/b":                    nil,
	} {
		got, ok := ParsePath(path)
		if want == nil {
			if ok {
				t.Errorf("%s: parsed as %+v", path, got)
			}
			continue
		}
		if !ok || got.Repo != want.Repo || got.Kind != want.Kind || got.Ref != want.Ref {
			t.Errorf("%s: %+v %v, want %+v", path, got, ok, want)
		}
		if (got.Digest != "") != (want.Ref == d) {
			t.Errorf("%s: digest %q", path, got.Digest)
		}
	}
}

func TestPathString(t *testing.T) {
	p := Path{Repo: "team/app", Kind: Tags, Ref: "list", Query: "n=1"}
	if got := p.String(); got != "/v2/team/app/tags/list?n=1" {
		t.Errorf("String() = %q", got)
	}
}
