package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContainerdConfigCommand(t *testing.T) {
	certs := t.TempDir()
	cfg := writeConfig(t, "logLevel: error\nproxy:\n  registries: [docker.io, quay.io]\ntarget:\n  type: generic\n  generic: {registry: \"127.0.0.1:5000/mirror\", insecure: true}\n")
	existing := filepath.Join(certs, "quay.io", "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(existing), 0o755); err != nil {
		t.Fatal(err)
	}
	orig := "server = \"https://quay.io\"\n\n[host.\"https://mirror.example.com\"]\n  capabilities = [\"pull\"]\n"
	if err := os.WriteFile(existing, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "containerd-config", "--config", cfg, "--certs-dir", certs, "--plain-http", "127.0.0.1:5000")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, h := range []string{"docker.io", "quay.io", "127.0.0.1:5000"} {
		b, err := os.ReadFile(filepath.Join(certs, h, "hosts.toml"))
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		s := string(b)
		if !strings.Contains(s, `[host."http://127.0.0.1:7439"]`) {
			t.Errorf("%s: no proxy host:\n%s", h, s)
		}
	}
	b, _ := os.ReadFile(existing)
	if i, j := strings.Index(string(b), "127.0.0.1:7439"), strings.Index(string(b), "mirror.example.com"); i < 0 || j < i {
		t.Errorf("the existing mirror is not kept after the proxy:\n%s", b)
	}
	// A second run changes nothing.
	out, err = run(t, "containerd-config", "--config", cfg, "--certs-dir", certs, "--plain-http", "127.0.0.1:5000")
	if err != nil || strings.Contains(out, "written:") {
		t.Errorf("second run: %v\n%s", err, out)
	}
	// Cleanup restores the original byte for byte and removes ours.
	if out, err = run(t, "containerd-config", "--config", cfg, "--certs-dir", certs, "--cleanup"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, _ := os.ReadFile(existing); string(b) != orig {
		t.Errorf("not restored:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(certs, "docker.io")); !os.IsNotExist(err) {
		t.Errorf("docker.io folder left behind: %v", err)
	}
}

func TestContainerdConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"), 0o644)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("version = 2\n"), 0o644)
	if out, err := run(t, "containerd-config", "--check", "--containerd-config", good); err != nil || !strings.Contains(out, "ok:") {
		t.Errorf("good config: %v\n%s", err, out)
	}
	if _, err := run(t, "containerd-config", "--check", "--containerd-config", bad); err == nil || !strings.Contains(err.Error(), "config_path") {
		t.Errorf("bad config: %v", err)
	}
	if _, err := run(t, "containerd-config", "--check"); err == nil || exitCode(err) != 2 {
		t.Errorf("--check without a file: %v", err)
	}
	// containerd 2.x's default: the list its transfer service ignores; the output says
	// what to add.
	v3 := filepath.Join(dir, "v3.toml")
	os.WriteFile(v3, []byte("version = 3\n"), 0o644)
	out, err := run(t, "containerd-config", "--check", "--containerd-config", v3)
	if err == nil || !strings.Contains(err.Error(), "12415") {
		t.Errorf("default 2.x config: %v", err)
	}
	for _, want := range []string{"transfer service", "this node needs:", `[plugins."io.containerd.cri.v1.images".registry]`, `config_path = "/etc/containerd/certs.d"`, "use_local_image_pull = true"} {
		if !strings.Contains(out, want) {
			t.Errorf("default 2.x config: output lacks %q:\n%s", want, out)
		}
	}
	// A version 2 config with a list: right for containerd 1.x, wrong for 2.x.
	list := filepath.Join(dir, "list.toml")
	os.WriteFile(list, []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n"), 0o644)
	if out, err := run(t, "containerd-config", "--check", "--containerd-config", list, "--containerd-version", "1.7.27"); err != nil || !strings.Contains(out, "ok:") || strings.Contains(out, "warning") {
		t.Errorf("list on 1.x: %v\n%s", err, out)
	}
	if out, err := run(t, "containerd-config", "--check", "--containerd-config", list); err != nil || !strings.Contains(out, "warning") {
		t.Errorf("list, version unknown: %v\n%s", err, out)
	}
	if out, err := run(t, "containerd-config", "--check", "--containerd-config", list, "--containerd-version", "containerd://2.1.4"); err == nil || !strings.Contains(out, "this node needs:") {
		t.Errorf("list on 2.x: %v\n%s", err, out)
	}
	if _, err := run(t, "containerd-config", "--check", "--containerd-config", list, "--containerd-version", "docker://24"); exitCode(err) != 2 {
		t.Errorf("bad --containerd-version: %v", err)
	}
}

// A registry the config says is plain HTTP (insecure: true) gets an http://
// server, so containerd's fallback to it works with no --plain-http; other
// hosts keep https.
func TestContainerdConfigInsecureRegistries(t *testing.T) {
	certs := t.TempDir()
	cfg := writeConfig(t, `logLevel: error
proxy:
  registries: [docker.io, "registry.local:5000"]
source:
  registries:
    - type: generic
      generic: {registry: "registry.local:5000", insecure: true}
    - type: generic
      generic: {registry: "secure.example.com"}
target:
  type: generic
  generic: {registry: "mirror.local:5000/k8s", insecure: true}
`)
	if out, err := run(t, "containerd-config", "--config", cfg, "--certs-dir", certs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for host, want := range map[string]string{
		"registry.local:5000": "server = \"http://registry.local:5000\"\nskip_verify = true\n",
		"mirror.local:5000":   "server = \"http://mirror.local:5000\"\nskip_verify = true\n",
		"secure.example.com":  "server = \"https://secure.example.com\"\n\n",
		"docker.io":           "server = \"https://registry-1.docker.io\"\n\n",
	} {
		b, err := os.ReadFile(filepath.Join(certs, host, "hosts.toml"))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: want %q in\n%s", host, want, b)
		}
	}
}
