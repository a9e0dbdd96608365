//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// containerdNode is a real containerd with its own root, state, socket and
// registry config_path under a test folder: a node without the kubelet.
// Content is isolated per namespace, so a pull in a fresh namespace fetches
// everything again, as on another node.
type containerdNode struct {
	Dir      string
	Socket   string
	Config   string // config.toml
	HostsDir string // config_path: <host>/hosts.toml
	ctrBin   string
	crictl   string // "" when not available
	cmd      *exec.Cmd
	syncLog
}

// containerdSkip skips the test, or fails it when E2E_REQUIRED is set (CI).
func containerdSkip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("E2E_REQUIRED") != "" {
		t.Fatalf("%s (E2E_REQUIRED is set)", msg)
	}
	t.Skip(msg + "; set E2E_REQUIRED=1 to fail instead")
}

// containerdTool finds a binary: $ENV, then PATH, then extra folders.
func containerdTool(env, name string, dirs ...string) string {
	if p := os.Getenv(env); p != "" {
		if isExecutable(p) {
			return p
		}
		return ""
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// crictlDir is where hack/tools.sh builds crictl.
func crictlDir() string {
	out, err := exec.Command("bash", filepath.Join(repoRoot(), "hack", "tools.sh"), "path", "crictl").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// repoRoot is the module root (the e2e folder's parent).
func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

// startContainerd runs containerd 1.6 (Debian's) until the test ends, with
// config_path set to HostsDir.
func startContainerd(t testing.TB) *containerdNode {
	t.Helper()
	return startContainerdWith(t, containerdOptions{})
}

// noConfigPath, as containerdOptions.ConfigPath, leaves config_path unset so
// containerd's own default applies (2.x: "/etc/containerd/certs.d:/etc/docker/certs.d").
const noConfigPath = "-"

// containerdOptions chooses the containerd and its config. The zero value is
// startContainerd's node: containerd 1.6 with config_path = HostsDir.
type containerdOptions struct {
	// V2 runs containerd 2.x (built by `bash hack/tools.sh containerd`), with
	// its ctr, and a version 3 config.
	V2 bool
	// LegacyConfig (with V2) writes a version 2 config, as a node upgraded from
	// 1.x has; containerd 2.x migrates it when it starts.
	LegacyConfig bool
	// ConfigPath is the CRI registry config_path: "" means HostsDir, noConfigPath
	// leaves it unset, anything else is written as is (a ':' list, a folder),
	// with {hosts} standing for HostsDir and {dir} for the node's folder.
	ConfigPath string
	// CRIImages is TOML added to the CRI image table: [plugins."io.containerd.cri.v1.images"]
	// (version 3) or [plugins."io.containerd.grpc.v1.cri"] (version 2),
	// e.g. "use_local_image_pull = true".
	CRIImages string
	// CRIRuntime is TOML added to the CRI runtime table: [plugins."io.containerd.cri.v1.runtime"]
	// (version 3) or [plugins."io.containerd.grpc.v1.cri"] (version 2), e.g.
	// "restrict_oom_score_adj = true".
	CRIRuntime string
	// CNIBinDir is where the CNI plugins are (default: the node's own empty folder).
	CNIBinDir string
}

// containerd2Dir is where hack/tools.sh builds containerd 2.x.
func containerd2Dir() string {
	out, err := exec.Command("bash", filepath.Join(repoRoot(), "hack", "tools.sh"), "path", "containerd").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// startContainerdWith runs a containerd chosen by o until the test ends.
func startContainerdWith(t testing.TB, o containerdOptions) *containerdNode {
	t.Helper()
	if os.Geteuid() != 0 {
		containerdSkip(t, "containerd needs root")
	}
	var bin, ctr, binDir string
	if o.V2 {
		binDir = containerd2Dir()
		bin, ctr = filepath.Join(binDir, "containerd"), filepath.Join(binDir, "ctr")
		if binDir == "" || !isExecutable(bin) || !isExecutable(ctr) {
			containerdSkip(t, "containerd 2.x not built (bash hack/tools.sh containerd)")
		}
	} else {
		bin = containerdTool("CONTAINERD_BIN", "containerd")
		ctr = containerdTool("CTR_BIN", "ctr")
		if bin == "" || ctr == "" {
			containerdSkip(t, "containerd or ctr not found (apt-get install containerd)")
		}
	}
	// Unix socket paths are short: keep the folder near /tmp.
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	n := &containerdNode{
		Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), Config: filepath.Join(dir, "config.toml"),
		HostsDir: filepath.Join(dir, "certs.d"), ctrBin: ctr,
		crictl: containerdTool("CRICTL_BIN", "crictl", crictlDir()),
	}
	if err := os.MkdirAll(n.HostsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.Config, []byte(containerdConfig(n, o)), 0o644); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "--config", n.Config, "--log-level", "debug")
	if binDir != "" {
		// containerd 2.x starts its own shim, found on PATH.
		n.cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	n.cmd.Stdout, n.cmd.Stderr = n, n
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		// Snapshots may still be mounted; unmount before removing the folder.
		_ = exec.Command("sh", "-c", "grep -o ' "+dir+"[^ ]*' /proc/mounts | xargs -r -n1 umount -l").Run()
		_ = os.RemoveAll(dir)
		if t.Failed() {
			t.Logf("containerd log:\n%s", n.Log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := n.Ctr(context.Background(), "version"); err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not come up:\n%s", n.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// containerdConfig is the config.toml for o: the node's own root, state,
// sockets and CNI folders, every other setting containerd's default.
func containerdConfig(n *containerdNode, o containerdOptions) string {
	dir := n.Dir
	cniBin := o.CNIBinDir
	if cniBin == "" {
		cniBin = filepath.Join(dir, "cni", "bin")
	}
	configPath := ""
	switch o.ConfigPath {
	case "":
		configPath = n.HostsDir
	case noConfigPath:
	default:
		configPath = strings.NewReplacer("{hosts}", n.HostsDir, "{dir}", dir).Replace(o.ConfigPath)
	}
	if o.V2 && !o.LegacyConfig {
		cfg := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.nri.v1.nri"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = "isolated"

[plugins."io.containerd.cri.v1.runtime"]
  disable_apparmor = true
%[8]s
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[5]q]
    conf_dir = %[6]q

[plugins."io.containerd.cri.v1.images"]
%[7]s
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), n.Socket, n.Socket+".ttrpc",
			cniBin, filepath.Join(dir, "cni", "conf"), o.CRIImages, o.CRIRuntime)
		if configPath != "" {
			cfg += fmt.Sprintf("[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = %q\n", configPath)
		}
		return cfg
	}
	disabled := `"io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"`
	if o.V2 {
		disabled += `, "io.containerd.snapshotter.v1.erofs", "io.containerd.nri.v1.nri"`
	}
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = [%[8]s]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = "isolated"

[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
%[7]s
%[9]s
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[5]q
    conf_dir = %[6]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), n.Socket, n.Socket+".ttrpc",
		cniBin, filepath.Join(dir, "cni", "conf"), o.CRIImages, disabled, o.CRIRuntime)
	if configPath != "" {
		cfg += fmt.Sprintf("  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = %q\n", configPath)
	}
	return cfg
}

// Log is what containerd printed.
func (n *containerdNode) Log() string {
	return n.String()
}

// Ctr runs ctr against this containerd.
func (n *containerdNode) Ctr(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, n.ctrBin, append([]string{"--address", n.Socket}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Pull pulls ref into namespace ns with ctr, reading hosts.toml files from
// HostsDir as the CRI plugin does.
func (n *containerdNode) Pull(ctx context.Context, ns, ref string) error {
	_, err := n.Ctr(ctx, "--namespace", ns, "images", "pull", "--hosts-dir", n.HostsDir, ref)
	return err
}

// ImageDigest is the digest containerd recorded for ref in namespace ns.
func (n *containerdNode) ImageDigest(ctx context.Context, ns, ref string) (string, error) {
	out, err := n.Ctr(ctx, "--namespace", ns, "images", "ls")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == ref {
			return f[2], nil
		}
	}
	return "", fmt.Errorf("%s not in namespace %s:\n%s", ref, ns, out)
}

// Crictl runs crictl against this containerd's CRI (namespace k8s.io,
// registry config from config_path). It skips the test without crictl.
func (n *containerdNode) Crictl(t testing.TB, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	if n.crictl == "" {
		containerdSkip(t, "crictl not found (bash hack/tools.sh crictl builds it)")
	}
	ep := "unix://" + n.Socket
	all := append([]string{"--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "60s"}, args...)
	out, err := exec.CommandContext(ctx, n.crictl, all...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("crictl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// RuntimeVersion is the containerd version the CRI reports ("v2.4.2",
// "1.6.20~ds1"), as a Node's containerRuntimeVersion carries it.
func (n *containerdNode) RuntimeVersion(t testing.TB, ctx context.Context) string {
	t.Helper()
	out, err := n.Crictl(t, ctx, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "RuntimeVersion:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no RuntimeVersion in crictl version:\n%s", out)
	return ""
}
