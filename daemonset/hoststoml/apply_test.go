package hoststoml

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/pelletier/go-toml/v2"
)

func TestApplyFreshFolder(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs.d") // does not exist yet
	o := testOptions(certs, "docker.io", "ghcr.io", "127.0.0.1:5000")
	o.PlainHTTP = map[string]bool{"127.0.0.1:5000": true}
	o.Hosts = append(o.Hosts, Host{Name: "registry.example.com", Server: "https://mirror.example.com/v2/prefix"})

	res := mustApply(t, o)
	if len(res.Written) != 4 || len(res.Unchanged) != 0 {
		t.Fatalf("result %+v", res)
	}
	want := map[string]endpoint{
		"docker.io":            {"https", "registry-1.docker.io", "/v2", allCaps},
		"ghcr.io":              {"https", "ghcr.io", "/v2", allCaps},
		"127.0.0.1:5000":       {"http", "127.0.0.1:5000", "/v2", allCaps},
		"registry.example.com": {"https", "mirror.example.com", "/v2/prefix/v2", allCaps},
	}
	for host, server := range want {
		got := endpoints(containerdHosts(t, certs, host))
		if !reflect.DeepEqual(got, []endpoint{proxyEndpoint, server}) {
			t.Errorf("%s: containerd reads %+v", host, got)
		}
	}

	got := string(readFile(t, filepath.Join(certs, "docker.io", "hosts.toml")))
	wantFile := header + `server = "https://registry-1.docker.io"

[host."http://127.0.0.1:7439"]
  capabilities = ["pull", "resolve"]
  dial_timeout = "1s"
`
	if got != wantFile {
		t.Errorf("docker.io/hosts.toml:\n%s\nwant:\n%s", got, wantFile)
	}
	if h := containerdHosts(t, certs, "docker.io"); h[0].Client.Transport == h[1].Client.Transport {
		t.Error("proxy host shares the default transport: dial_timeout not applied")
	}
}

const existingHosts = `# mirror first, as ops asked
server = "https://registry-1.docker.io"  # the origin
skip_verify = false

[host."https://mirror.example.com"]
  capabilities = ["pull", "resolve"]
  [host."https://mirror.example.com".header]
    x-team = "infra"

[host."https://backup.example.com"]
  capabilities = ["pull"]
`

func TestApplyKeepsExistingAndCleanupRestores(t *testing.T) {
	certs := t.TempDir()
	path := filepath.Join(certs, "docker.io", "hosts.toml")
	writeFile(t, path, existingHosts, 0o600)
	o := testOptions(certs, "docker.io")

	mustApply(t, o)
	got := endpoints(containerdHosts(t, certs, "docker.io"))
	want := []endpoint{
		proxyEndpoint,
		{"https", "mirror.example.com", "/v2", pullResolve},
		{"https", "backup.example.com", "/v2", docker.HostCapabilityPull},
		{"https", "registry-1.docker.io", "/v2", allCaps},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("containerd reads %+v\nwant %+v", got, want)
	}
	merged := readFile(t, path)
	if !bytes.Contains(merged, []byte(existingHosts[strings.Index(existingHosts, "[host."):])) {
		t.Errorf("existing hosts not kept verbatim:\n%s", merged)
	}
	if bytes.Count(merged, []byte("server =")) != 1 {
		t.Errorf("server written twice:\n%s", merged)
	}
	if b := readFile(t, path+backupSuffix); string(b) != existingHosts {
		t.Errorf("backup differs: %q", b)
	}

	res := mustCleanup(t, o)
	if !slices.Equal(res.Restored, []string{path}) {
		t.Errorf("restored %v", res.Restored)
	}
	if b := readFile(t, path); string(b) != existingHosts {
		t.Errorf("not restored byte for byte:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	for _, f := range []string{path + backupSuffix, path + stateSuffix} {
		if exists(f) {
			t.Errorf("%s left behind", f)
		}
	}
	if !exists(filepath.Dir(path)) {
		t.Error("removed a folder we did not create")
	}
}

func TestApplyIdempotent(t *testing.T) {
	for name, existing := range map[string]string{"fresh": "", "existing": existingHosts} {
		t.Run(name, func(t *testing.T) {
			certs := t.TempDir()
			path := filepath.Join(certs, "docker.io", "hosts.toml")
			if existing != "" {
				writeFile(t, path, existing, 0o644)
			}
			o := testOptions(certs, "docker.io")
			mustApply(t, o)
			files := []string{path, path + stateSuffix}
			if existing != "" {
				files = append(files, path+backupSuffix)
			}
			before := map[string][]byte{}
			times := map[string]time.Time{}
			for _, f := range files {
				before[f] = readFile(t, f)
				times[f] = backdate(t, f)
			}

			res := mustApply(t, o)
			if len(res.Written) != 0 || !slices.Equal(res.Unchanged, []string{path}) {
				t.Fatalf("second run: %+v", res)
			}
			for _, f := range files {
				if !bytes.Equal(readFile(t, f), before[f]) || !mtime(t, f).Equal(times[f]) {
					t.Errorf("%s rewritten", f)
				}
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != len(files) {
				t.Errorf("stray files: %v", entries)
			}
		})
	}
}

func TestApplyRewritesOnOptionChange(t *testing.T) {
	certs := t.TempDir()
	path := filepath.Join(certs, "ghcr.io", "hosts.toml")
	writeFile(t, path, existingHosts, 0o644)
	o := testOptions(certs, "ghcr.io")
	mustApply(t, o)

	o.ProxyURL = "http://127.0.0.1:8000"
	o.DialTimeout = 300 * time.Millisecond
	if res := mustApply(t, o); len(res.Written) != 1 {
		t.Fatalf("%+v", res)
	}
	b := readFile(t, path)
	if bytes.Contains(b, []byte("7439")) || !bytes.Contains(b, []byte(`dial_timeout = "300ms"`)) {
		t.Errorf("old proxy kept or timeout not updated:\n%s", b)
	}
	if got := endpoints(containerdHosts(t, certs, "ghcr.io")); got[0].host != "127.0.0.1:8000" || len(got) != 4 {
		t.Errorf("containerd reads %+v", got)
	}
	mustCleanup(t, o)
	if string(readFile(t, path)) != existingHosts {
		t.Error("original not restored after an option change")
	}
}

// A file somebody writes over ours becomes the original: merged into, and restored.
func TestApplyAdoptsReplacedFile(t *testing.T) {
	certs := t.TempDir()
	path := filepath.Join(certs, "quay.io", "hosts.toml")
	o := testOptions(certs, "quay.io")
	mustApply(t, o)

	replaced := "server = \"https://quay.io\"\n\n[host.\"https://other.example\"]\n"
	writeFile(t, path, replaced, 0o644)
	mustApply(t, o)
	if got := endpoints(containerdHosts(t, certs, "quay.io")); len(got) != 3 || got[0] != proxyEndpoint || got[1].host != "other.example" {
		t.Fatalf("containerd reads %+v", got)
	}
	mustCleanup(t, o)
	if string(readFile(t, path)) != replaced {
		t.Error("the replacing file was not restored")
	}
}

// Losing the state marker must not stack a second proxy entry onto our own file.
func TestApplyRecoversLostState(t *testing.T) {
	certs := t.TempDir()
	path := filepath.Join(certs, "docker.io", "hosts.toml")
	writeFile(t, path, existingHosts, 0o644)
	o := testOptions(certs, "docker.io")
	mustApply(t, o)
	first := readFile(t, path)
	if err := os.Remove(path + stateSuffix); err != nil {
		t.Fatal(err)
	}
	mustApply(t, o)
	if !bytes.Equal(readFile(t, path), first) {
		t.Error("rebuilt file differs")
	}
	mustCleanup(t, o)
	if string(readFile(t, path)) != existingHosts {
		t.Error("original not restored")
	}
}

func TestApplyRefusesBadExisting(t *testing.T) {
	cases := map[string]string{
		"not toml":       "server = \n[host.\n",
		"bad capability": "[host.\"https://m.example\"]\n  capabilities = [\"pull\", \"fly\"]\n",
		"bad timeout":    "[host.\"https://m.example\"]\n  dial_timeout = \"soon\"\n",
		"has our proxy":  "[host.\"" + testProxy + "\"]\n  capabilities = [\"pull\"]\n",
		"inline host":    "host = { \"https://m.example\" = { capabilities = [\"pull\"] } }\n",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			certs := t.TempDir()
			path := filepath.Join(certs, "docker.io", "hosts.toml")
			writeFile(t, path, content, 0o644)
			_, err := Apply(context.Background(), testOptions(certs, "docker.io"))
			if err == nil {
				t.Fatalf("no error; wrote:\n%s", readFile(t, path))
			}
			t.Log(err)
			if string(readFile(t, path)) != content || exists(path+stateSuffix) || exists(path+backupSuffix) {
				t.Error("file touched")
			}
		})
	}
}

func TestApplyRejectsInvalidHostNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "../x", "x/../../y", "a/b", "/etc", "docker.io/library",
		"host:99999", "host:", "a b", "_default", "-bad.example", "bad-.example", "a..b", "a\x00b", "a\nb"} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			certs := filepath.Join(root, "certs.d")
			o := testOptions(certs, "ghcr.io", name)
			if _, err := Apply(context.Background(), o); err == nil {
				t.Fatal("accepted")
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("wrote %v", entries)
			}
		})
	}
	for _, name := range []string{"docker.io", "localhost:5000", "127.0.0.1:5000", "[::1]:5000", "123.dkr.ecr.us-east-1.amazonaws.com", "Registry.Example.com"} {
		if err := validateHostName(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestApplyRejectsBadOptions(t *testing.T) {
	certs := t.TempDir()
	for name, mutate := range map[string]func(*Options){
		"relative dir":  func(o *Options) { o.CertsDir = "certs.d" },
		"no proxy":      func(o *Options) { o.ProxyURL = "" },
		"proxy path ns": func(o *Options) { o.ProxyURL = testProxy + "?ns=docker.io" },
		"proxy scheme":  func(o *Options) { o.ProxyURL = "tcp://127.0.0.1:7439" },
		"server quote":  func(o *Options) { o.Hosts[0].Server = "https://x\"y" },
		"twice":         func(o *Options) { o.Hosts = append(o.Hosts, o.Hosts[0]) },
		"negative":      func(o *Options) { o.DialTimeout = -time.Second },
		"no hosts":      func(o *Options) { o.Hosts = nil },
	} {
		o := testOptions(certs, "docker.io")
		mutate(&o)
		if _, err := Apply(context.Background(), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if entries, _ := os.ReadDir(certs); len(entries) != 0 {
		t.Errorf("wrote %v", entries)
	}
}

// containerd prefers "host_port_" over "host:port"; we write where it reads.
func TestApplyUsesPortFolder(t *testing.T) {
	certs := t.TempDir()
	if err := os.Mkdir(filepath.Join(certs, "127.0.0.1_5000_"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := testOptions(certs, "127.0.0.1:5000")
	mustApply(t, o)
	if !exists(filepath.Join(certs, "127.0.0.1_5000_", "hosts.toml")) || exists(filepath.Join(certs, "127.0.0.1:5000")) {
		t.Error("wrote to the folder containerd does not read")
	}
	if got := endpoints(containerdHosts(t, certs, "127.0.0.1:5000")); got[0] != proxyEndpoint {
		t.Errorf("containerd reads %+v", got)
	}
	mustCleanup(t, o)
	if !exists(filepath.Join(certs, "127.0.0.1_5000_")) {
		t.Error("removed a folder we did not create")
	}
}

// Cert files in a folder without hosts.toml stop counting once hosts.toml exists, so a
// new file names them.
func TestApplyKeepsCertFiles(t *testing.T) {
	certs := t.TempDir()
	dir := filepath.Join(certs, "registry.internal:5000")
	for _, f := range []string{"ca.crt", "client.cert", "client.key", "other.cert"} {
		writeFile(t, filepath.Join(dir, f), "x", 0o644)
	}
	mustApply(t, testOptions(certs, "registry.internal:5000"))
	var got struct {
		CA     []string `toml:"ca"`
		Client []any    `toml:"client"`
	}
	if err := toml.Unmarshal(readFile(t, filepath.Join(dir, "hosts.toml")), &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.CA, []string{"ca.crt"}) ||
		!reflect.DeepEqual(got.Client, []any{[]any{"client.cert", "client.key"}, "other.cert"}) {
		t.Errorf("cert files: %+v", got)
	}
}

func TestApplyChecksContainerdConfig(t *testing.T) {
	root := t.TempDir()
	certs := filepath.Join(root, "host", "etc", "containerd", "certs.d")
	cfg := filepath.Join(root, "config.toml")
	o := testOptions(certs, "docker.io")
	o.ContainerdConfig = cfg

	writeFile(t, cfg, "version = 2\n", 0o644)
	if _, err := Apply(context.Background(), o); err == nil || !strings.Contains(err.Error(), "config_path") {
		t.Fatalf("want config_path error, got %v", err)
	}
	writeFile(t, cfg, "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n", 0o644)
	if _, err := Apply(context.Background(), o); err == nil || !strings.Contains(err.Error(), "/etc/containerd/certs.d") {
		t.Fatalf("want a not-covered error, got %v", err)
	}
	if exists(certs) {
		t.Fatal("wrote despite the refusal")
	}
	o.ContainerdCertsDir = "/etc/containerd/certs.d" // as mounted in a DaemonSet pod
	mustApply(t, o)
}

func TestApplyHonoursContext(t *testing.T) {
	certs := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Apply(ctx, testOptions(certs, "docker.io")); err == nil {
		t.Fatal("no error")
	}
	if entries, _ := os.ReadDir(certs); len(entries) != 0 {
		t.Errorf("wrote %v", entries)
	}
}

// An http:// server with SkipVerify (a registry the config calls insecure):
// containerd 2.x reads it as HTTPS first (its HTTP fallback wraps the
// transport: an http:// server with a TLS setting), then plain HTTP; an
// original file's own skip_verify is not written twice.
func TestApplyInsecureOrigin(t *testing.T) {
	certs := t.TempDir()
	o := testOptions(certs)
	o.Hosts = []Host{{Name: "registry.local:5000", Server: "http://registry.local:5000", SkipVerify: true},
		{Name: "other.local:5000", Server: "http://other.local:5000", SkipVerify: true}}
	orig := filepath.Join(certs, "other.local:5000", "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(orig), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, orig, "skip_verify = true\n", 0o644)
	mustApply(t, o)
	for _, host := range []string{"registry.local:5000", "other.local:5000"} {
		b := string(readFile(t, filepath.Join(certs, host, "hosts.toml")))
		if n := strings.Count(b, "skip_verify = true"); n != 1 {
			t.Errorf("%s: skip_verify written %d times:\n%s", host, n, b)
		}
		h := containerdHosts(t, certs, host)
		if got := endpoints(h); len(got) != 2 || got[0] != proxyEndpoint || got[1].host != host || got[1].scheme != "https" {
			t.Errorf("%s: containerd reads %+v, want the proxy, then %s over HTTPS first", host, got, host)
		}
	}
}
