package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func testBinaries(t *testing.T) binaries {
	t.Helper()
	dir := t.TempDir()
	var bins, proxies binaries
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		f := filepath.Join(dir, filepath.Base(p))
		if err := os.WriteFile(f, []byte("binary for "+p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := bins.Set(p + "=" + f); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f+"-proxy", []byte("proxy binary for "+p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := proxies.Set(p + "=" + f + "-proxy"); err != nil {
			t.Fatal(err)
		}
	}
	if err := bins.pair(proxies); err != nil {
		t.Fatal(err)
	}
	return bins
}

// TestBuildIndex: one image per platform, nonroot, the binary as entrypoint, every time the
// commit's, and the same inputs give the same digest.
func TestBuildIndex(t *testing.T) {
	bins := testBinaries(t)
	created := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	m := meta{source: "https://example.test/repo", version: "1.2.3", revision: "abc", created: created}
	idx, err := buildIndex(bins, []byte("CA"), m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := buildIndex(bins, []byte("CA"), m)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := idx.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same inputs: %s and %s", d1, d2)
	}
	later := m
	later.created = created.Add(time.Second)
	other, err := buildIndex(bins, []byte("CA"), later)
	if err != nil {
		t.Fatal(err)
	}
	if d3, _ := other.Digest(); d3 == d1 {
		t.Error("another commit time gave the same digest")
	}

	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 || im.Annotations["org.opencontainers.image.version"] != "1.2.3" {
		t.Fatalf("index %s with %d manifests, annotations %v", im.MediaType, len(im.Manifests), im.Annotations)
	}
	for i, d := range im.Manifests {
		want := bins[i].platform
		if d.Platform == nil || d.Platform.OS != want.OS || d.Platform.Architecture != want.Architecture {
			t.Errorf("manifest %d: platform %v, want %v", i, d.Platform, want)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, want, m)
	}
}

func checkImage(t *testing.T, img v1.Image, p v1.Platform, m meta) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != p.Architecture || cf.OS != p.OS || cf.Config.User != "65532:65532" ||
		len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != binaryPath || !cf.Created.Time.Equal(m.created) {
		t.Errorf("%s config: %+v", p.Architecture, cf)
	}
	for k, v := range map[string]string{"org.opencontainers.image.revision": "abc", "org.opencontainers.image.source": m.source,
		"org.opencontainers.image.created": "2026-11-30T12:00:00Z"} {
		if cf.Config.Labels[k] != v {
			t.Errorf("%s label %s = %q, want %q", p.Architecture, k, cf.Config.Labels[k], v)
		}
	}
	files, err := imageFiles(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range files {
		if !h.ModTime.Equal(m.created) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s %s: mtime %s, owner %d:%d", p.Architecture, h.Name, h.ModTime, h.Uid, h.Gid)
		}
	}
	if h := files["tmp"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("%s: /tmp is not writable by all: %+v", p.Architecture, h)
	}
	for _, f := range []string{binaryPath, proxyBinaryPath} {
		if h := files[f[1:]]; h == nil || h.Mode&0o111 == 0 {
			t.Errorf("%s: no executable %s", p.Architecture, f)
		}
	}
	// What verify checks of a pushed image.
	if err := hasExecutables(img, binaryPath, proxyBinaryPath); err != nil {
		t.Errorf("%s: %v", p.Architecture, err)
	}
	if err := hasExecutables(img, "/etc/passwd"); err == nil {
		t.Errorf("%s: /etc/passwd passes as an executable", p.Architecture)
	}
	for _, f := range []string{"etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group"} {
		if files[f] == nil {
			t.Errorf("%s: no %s", p.Architecture, f)
		}
	}
}

// TestPairProxyBinaries: every platform needs its node proxy binary, and a proxy binary needs
// its platform's binary.
func TestPairProxyBinaries(t *testing.T) {
	set := func(specs ...string) binaries {
		var b binaries
		for _, s := range specs {
			if err := b.Set(s); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	for _, c := range []struct {
		name          string
		bins, proxies binaries
		wantErr       string
	}{
		{"paired", set("linux/amd64=a", "linux/arm64=b"), set("linux/arm64=bp", "linux/amd64=ap"), ""},
		{"missing", set("linux/amd64=a", "linux/arm64=b"), set("linux/amd64=ap"), "no -proxy-binary for linux/arm64/v8"},
		{"extra", set("linux/amd64=a"), set("linux/amd64=ap", "linux/arm64=bp"), "-proxy-binary for linux/arm64/v8, which has no -binary"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.bins.pair(c.proxies)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range c.bins {
					if b.proxyPath != b.path+"p" {
						t.Errorf("%s: proxy binary %q, want %q", b.platform, b.proxyPath, b.path+"p")
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %v, want %q", err, c.wantErr)
			}
		})
	}
}
