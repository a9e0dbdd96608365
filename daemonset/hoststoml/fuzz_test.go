package hoststoml

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
)

// FuzzHostsToml feeds arbitrary existing hosts.toml files and host names to Apply. It must
// never panic or write outside the certs dir; when it succeeds, containerd's own loader
// must see the proxy first, the original hosts after it in order, and the original server
// (if any) last; a second run must change nothing and Cleanup must restore the bytes.
func FuzzHostsToml(f *testing.F) {
	f.Add([]byte(existingHosts), "docker.io", true)
	f.Add([]byte(""), "ghcr.io", true)
	f.Add([]byte(""), "127.0.0.1:5000", false)
	f.Add([]byte("server = \"http://localhost:5000\"\nskip_verify = true\n"), "localhost:5000", true)
	f.Add([]byte("[host.\"https://a\"]\n[host.\"https://b\"]\n[host.\"https://a\".header]\nx = \"y\"\n"), "a.example", true)
	f.Add([]byte("[host.\"https://a\"]\n  capabilities = [\"pull\"]\n  override_path = true\n"), "a.example", true)
	f.Add([]byte("server = \"https://x\"\r\n# c\r\n[host.\"https://m\"]\r\n"), "x", true)
	f.Add([]byte("host.\"https://dotted\".capabilities = [\"pull\"]\n"), "x", true)
	f.Add([]byte("[[host]]\n"), "x", true)
	f.Add([]byte("a = \"no newline\""), "x:1", true)
	f.Add([]byte("\ufeffserver = \"https://bom\"\n"), "x", true)
	f.Add([]byte("[host.'http://127.0.0.1:7439'.header]\n"), "docker.io", true)
	f.Add([]byte("server = '''\nmultiline\n[host.\"x\"]\n'''\n"), "docker.io", true)
	f.Add([]byte("x = 1\n"), "../escape", true)
	f.Add([]byte("ca = \"missing.crt\"\n"), "x", true)

	f.Fuzz(func(t *testing.T, existing []byte, name string, write bool) {
		if len(existing) > 1<<16 {
			return
		}
		root := t.TempDir()
		certs := filepath.Join(root, "certs.d")
		o := testOptions(certs, name)
		if validateHostName(name) != nil {
			if _, err := Apply(context.Background(), o); err == nil {
				t.Fatalf("invalid host %q accepted", name)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Fatalf("invalid host %q: wrote %v", name, entries)
			}
			return
		}
		dir := filepath.Join(certs, name)
		path := filepath.Join(dir, "hosts.toml")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Skip(err)
		}
		if write {
			if err := os.WriteFile(path, existing, 0o644); err != nil {
				t.Skip(err)
			}
		}

		if _, err := Apply(context.Background(), o); err != nil {
			if write && !bytes.Equal(readFile(t, path), existing) {
				t.Fatalf("failed (%v) but changed the file", err)
			}
			return
		}
		got, err := loadHosts(certs, name)
		if err != nil {
			// containerd reads cert files named in the file; then it fails on the original too.
			if _, origErr := loadBytes(t, existing, name); !write || origErr == nil {
				t.Fatalf("containerd fails on our file only: %v\n%s", err, readFile(t, path))
			}
			return
		}
		if endpoints(got[:1])[0] != proxyEndpoint {
			t.Fatalf("containerd reads %+v first, not the proxy\n%s", endpoints(got), readFile(t, path))
		}
		if write && len(existing) > 0 {
			// Apply accepted the original, so containerd reads it as a hosts.toml too.
			orig, err := loadBytes(t, existing, name)
			if err != nil {
				t.Fatalf("containerd fails on the original only: %v", err)
			}
			want, gotRest := endpoints(orig), endpoints(got[1:])
			if len(gotRest) != len(want) || !reflect.DeepEqual(gotRest[:len(want)-1], want[:len(want)-1]) {
				t.Fatalf("original hosts %+v, merged %+v\n%s", want, endpoints(got), readFile(t, path))
			}
			if parsed, _ := parseHostsFile(existing); parsed.Server != "" && gotRest[len(want)-1] != want[len(want)-1] {
				t.Fatalf("original server %+v, merged %+v", want[len(want)-1], gotRest[len(want)-1])
			}
		}

		before := readFile(t, path)
		if res, err := Apply(context.Background(), o); err != nil || len(res.Unchanged) != 1 {
			t.Fatalf("second run: %+v %v", res, err)
		}
		if !bytes.Equal(readFile(t, path), before) {
			t.Fatal("second run changed the file")
		}
		if _, err := Cleanup(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		if write {
			if after := readFile(t, path); !bytes.Equal(after, existing) {
				t.Fatalf("Cleanup restored %q, want %q", after, existing)
			}
		} else if exists(path) {
			t.Fatal("Cleanup left our file")
		}
	})
}

// loadBytes is what containerd makes of a hosts.toml with content b for host.
func loadBytes(t *testing.T, b []byte, host string) ([]docker.RegistryHost, error) {
	t.Helper()
	certs := t.TempDir()
	writeFile(t, filepath.Join(certs, host, "hosts.toml"), string(b), 0o644)
	return loadHosts(certs, host)
}
