//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// kubeNode is a real single-node Kubernetes cluster on this machine: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet and kube-proxy (v1.37, built by
// hack/tools.sh), CoreDNS, and containerd 1.6 or 2.x as the CRI with runc and Debian's CNI
// plugins on a bridge the test creates. The node's address is the bridge's gateway; its
// local registry (Infra) serves the pause image and whatever the test pushes there.
type kubeNode struct {
	*kubeCluster
	Name  string
	Net   *nodeNet
	CRI   *containerdNode
	Infra *registryproc.Registry
	Dir   string
}

// nodeOptions choose the node's CRI.
type nodeOptions struct {
	// V2 runs containerd 2.x (built by hack/tools.sh) instead of Debian's 1.6.
	V2 bool
}

const cniPlugins = "/usr/lib/cni"

// startNode starts the cluster and stops every part of it when the test ends: pods and
// their shims, mounts, the bridge, and kube-proxy's iptables rules.
func startNode(ctx context.Context, t testing.TB, o nodeOptions) *kubeNode {
	t.Helper()
	if os.Geteuid() != 0 {
		containerdSkip(t, "a kubelet needs root")
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if !isExecutable(filepath.Join(cniPlugins, p)) {
			containerdSkip(t, "CNI plugin %s/%s missing (apt-get install containernetworking-plugins)", cniPlugins, p)
		}
	}
	bins := map[string]string{}
	for _, name := range []string{"kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns"} {
		bins[name] = kubeTool(t, name)
	}
	lockNode(ctx, t)
	nn := startNodeNet(t)
	dir, err := os.MkdirTemp("", "kis-node-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n := &kubeNode{Name: "node-" + strings.TrimPrefix(nn.Bridge, "kis"), Net: nn, Dir: dir}

	n.Infra = registryproc.Start(t, registryproc.Options{Addr: nn.FreeAddr(t)})
	pause := n.Infra.Addr + "/e2e/pause:1"
	pushImage(t, pause, sleeperImage(t))

	n.kubeCluster = startKubeWith(t, kubeOptions{Address: nn.Gateway,
		// Pods reach the apiserver through the kubernetes Service: let it keep its endpoints.
		Args: []string{"--endpoint-reconciler-type=lease", "--kubelet-preferred-address-types=InternalIP"}})

	// containerd: the pause image from the node's registry; restrict_oom_score_adj because
	// this machine is itself a container (sandboxes fail to start otherwise).
	co := containerdOptions{V2: o.V2, CNIBinDir: cniPlugins, CRIRuntime: "  restrict_oom_score_adj = true"}
	if o.V2 {
		co.CRIImages = fmt.Sprintf("[plugins.\"io.containerd.cri.v1.images\".pinned_images]\n  sandbox = %q\n", pause)
	} else {
		co.CRIImages = fmt.Sprintf("  sandbox_image = %q", pause)
	}
	n.CRI = startContainerdWith(t, co)
	n.WriteHostsToml(t, n.Infra.Addr, plainHostsToml(n.Infra.Addr))
	confDir := filepath.Join(n.CRI.Dir, "cni", "conf")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeKubeFile(t, filepath.Join(confDir, "10-e2e.conflist"), []byte(nn.CNIConfig(filepath.Join(dir, "ipam"))))

	kubeletDir := filepath.Join(dir, "kubelet")
	// After the kubelet stops: every pod sandbox (with its shim, network and mounts) goes,
	// then whatever the kubelet left mounted.
	t.Cleanup(func() { unmountUnder(kubeletDir) })
	t.Cleanup(func() { n.removeAllPods(t) })

	proxyCfg := filepath.Join(dir, "kube-proxy.yaml")
	writeKubeFile(t, proxyCfg, []byte(fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
healthzBindAddress: %s
metricsBindAddress: %s
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {minSyncPeriod: 0s}
`, n.Kubeconfig, n.Name, nn.Subnet, registryproc.FreeAddr(t), registryproc.FreeAddr(t))))
	t.Cleanup(func() {
		if out, err := exec.Command(bins["kube-proxy"], "--cleanup", "--config", proxyCfg).CombinedOutput(); err != nil {
			t.Logf("kube-proxy --cleanup: %v\n%s", err, out)
		}
	})
	startKubeProcess(t, "kube-proxy", bins["kube-proxy"], "--config", proxyCfg)

	kubeletCfg := filepath.Join(dir, "kubelet.yaml")
	_, kubeletPort, _ := strings.Cut(nn.FreeAddr(t), ":")
	_, healthzPort, _ := strings.Cut(registryproc.FreeAddr(t), ":")
	writeKubeFile(t, kubeletCfg, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The host is cgroup v1 and itself a container.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: unix://%[1]s
address: %[2]s
port: %[3]s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[4]s
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
clusterDNS: [%[2]s]
clusterDomain: cluster.local
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
`, n.CRI.Socket, nn.Gateway, kubeletPort, healthzPort)))
	startKubeProcess(t, "kubelet", bins["kubelet"], "--config="+kubeletCfg, "--kubeconfig="+n.Kubeconfig,
		"--root-dir="+kubeletDir, "--cert-dir="+filepath.Join(kubeletDir, "pki"),
		"--hostname-override="+n.Name, "--node-ip="+nn.Gateway, "--v=1")

	startKubeProcess(t, "kube-controller-manager", bins["kube-controller-manager"],
		"--kubeconfig="+n.Kubeconfig, "--authentication-kubeconfig="+n.Kubeconfig, "--authorization-kubeconfig="+n.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+freePort(t),
		"--root-ca-file="+n.CAFile, "--service-account-private-key-file="+n.SAKeyFile,
		"--use-service-account-credentials=false", "--cluster-name=e2e", "--concurrent-gc-syncs=5")
	startKubeProcess(t, "kube-scheduler", bins["kube-scheduler"],
		"--kubeconfig="+n.Kubeconfig, "--authentication-kubeconfig="+n.Kubeconfig, "--authorization-kubeconfig="+n.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+freePort(t))

	corefile := filepath.Join(dir, "Corefile")
	writeKubeFile(t, corefile, []byte(fmt.Sprintf(`.:53 {
    bind %s
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`, nn.Gateway, n.Kubeconfig)))
	startKubeProcess(t, "coredns", bins["coredns"], "-conf", corefile)

	n.waitReady(ctx, t)
	return n
}

// waitReady waits for the node to be Ready and for the default namespace's service account
// and root CA (the controller-manager's work), which every pod needs.
func (n *kubeNode) waitReady(ctx context.Context, t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	waitFor(ctx, t, "node "+n.Name+" Ready", func() bool {
		node, err := n.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	})
	waitFor(ctx, t, "the default service account and kube-root-ca.crt", func() bool {
		_, err1 := n.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		_, err2 := n.Client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err1 == nil && err2 == nil
	})
}

// removeAllPods removes every pod sandbox from containerd (stopping its containers, its
// network and its shim) and kills any shim of this containerd still running.
func (n *kubeNode) removeAllPods(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := n.CRI.Crictl(t, ctx, "rmp", "--all", "--force"); err != nil {
		t.Logf("crictl rmp: %v\n%s", err, out)
	}
	for _, pid := range processesWith(n.CRI.Dir) {
		if pid != os.Getpid() && pid != n.CRI.cmd.Process.Pid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// processesWith lists the processes whose command line mentions s (the shims of a
// containerd name its socket).
func processesWith(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder unmounts everything mounted at or below dir, deepest first (the kubelet
// bind-mounts its root folder onto itself).
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			points = append(points, f[1])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	_, p, _ := strings.Cut(registryproc.FreeAddr(t), ":")
	return p
}

// plainHostsToml sends pulls of host to it over plain HTTP.
func plainHostsToml(host string) string {
	return fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host)
}

// WriteHostsToml writes containerd's hosts.toml for host, as a node's admin would.
func (n *kubeNode) WriteHostsToml(t testing.TB, host, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(n.CRI.HostsDir, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.CRI.HostsDir, host, "hosts.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// podRunning waits until the pod is Running with every container ready, and fails early
// when a container cannot start (ErrImagePull, ImagePullBackOff, CreateContainerError...).
func (n *kubeNode) podRunning(ctx context.Context, t testing.TB, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	var why string
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		p, err := n.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			pod = p
			ready := p.Status.Phase == corev1.PodRunning
			for _, cs := range p.Status.ContainerStatuses {
				ready = ready && cs.Ready
				if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
					why = w.Reason + ": " + w.Message
				}
			}
			if ready {
				return p
			}
			if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
				t.Fatalf("pod %s/%s ended: %s\n%s", ns, name, p.Status.Phase, n.describe(t, ns, name))
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pod %s/%s not running (last: %s): %v\n%s", ns, name, why, pod, n.describe(t, ns, name))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// describe is kubectl describe of a pod, for failures.
func (n *kubeNode) describe(t testing.TB, ns, name string) string {
	out, _ := exec.Command("kubectl", "--kubeconfig", n.Kubeconfig, "describe", "pod", "-n", ns, name).CombinedOutput()
	return string(out)
}

// namespace creates a namespace and waits for its default service account (the
// controller-manager's), which its pods need.
func (n *kubeNode) namespace(ctx context.Context, t testing.TB, name string) {
	t.Helper()
	_, err := n.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	waitFor(ctx, t, "service account default in "+name, func() bool {
		_, err := n.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
}
