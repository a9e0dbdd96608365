//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// TestNodeChart installs the chart with `helm install` on a real single-node cluster (see
// startNode), from the image `make image` built, pushed into the node's registry, once with
// containerd 1.6 and once with containerd 2.x as the node's CRI. The source and target are
// registries on the node's address; a relay in front of the source can slow its blobs.
//
//   - install: the webhook and the proxy are Ready, the init container wrote hosts.toml into
//     the node's certs folder (keeping the admin's file), `helm test` passes, and the image
//     runs `k8s-image-swapper version`;
//   - a Pod with a source image is rewritten to the target and Running; its pull went through
//     the proxy (proxy metrics) and the image is in the target; a second Pod, after the node
//     forgot the image, is served from the target without asking the source;
//   - the proxy pod deleted while a Pod pulls: the Pod still starts (containerd falls back to
//     the origin);
//   - helm upgrade to imageSwapPolicy always, imageCopyPolicy none and another log level
//     (the proxy restarts): Pods keep starting, and a Pod whose image the target lacks starts
//     through pull-time fallback;
//   - helm uninstall leaves the certs folder byte for byte as before the install.
func TestNodeChart(t *testing.T) {
	index := swapperImage(t)
	for _, c := range []struct {
		name string
		v2   bool
	}{{"containerd-1.6", false}, {"containerd-2.x", true}} {
		t.Run(c.name, func(t *testing.T) { testNodeChart(t, index, c.v2) })
	}
}

func testNodeChart(t *testing.T, index v1.ImageIndex, v2 bool) {
	helmBin := kubeTool(t, "helm")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	n := startNode(ctx, t, nodeOptions{V2: v2})
	src := registryproc.Start(t, registryproc.Options{Addr: n.Net.FreeAddr(t)})
	tgt := registryproc.Start(t, registryproc.Options{Addr: n.Net.FreeAddr(t)})
	slow := startFaultRelay(t, src.Addr, n.Net.FreeAddr(t))
	repo := n.Infra.Addr + "/k8s-image-swapper"
	pushImage(t, repo+":e2e", index)
	toTarget := func(ref string) string { return tgt.Addr + "/" + strings.Replace(ref, ":", "_", 1) }

	// What the node had before: the admin's plain-HTTP setting for the source, and a
	// registry the chart does not manage.
	n.WriteHostsToml(t, src.Addr, plainHostsToml(src.Addr))
	n.WriteHostsToml(t, "registry.example:5000", plainHostsToml("registry.example:5000"))
	before := treeSnapshot(t, n.CRI.HostsDir)

	r := &swapperRelease{node: n, helmBin: helmBin, Name: "swapper", NS: "swapper", ProxyPort: freePort(t)}
	config := func(swap, copyPolicy, level string) string {
		return fmt.Sprintf(`dryRun: false
logLevel: %s
imageSwapPolicy: %s
imageCopyPolicy: %s
source:
  registries:
    - {type: generic, generic: {registry: %q, insecure: true}}
    - {type: generic, generic: {registry: %q, insecure: true}}
target:
  type: generic
  generic: {registry: %q, insecure: true}
proxy:
  registries: [%q, %q]
`, level, swap, copyPolicy, src.Addr, slow.Addr, tgt.Addr, src.Addr, slow.Addr)
	}
	values := func(cfg string) string {
		return nodeValues(repo, n.CRI.HostsDir, n.CRI.Config, r.ProxyPort, cfg, src.Addr, slow.Addr, tgt.Addr)
	}
	r.install(ctx, t, values(config("exists", "immediate", "debug")))

	t.Run("install", func(t *testing.T) { checkInstall(ctx, t, r, index, src.Addr, slow.Addr, tgt.Addr) })
	n.namespace(ctx, t, "apps")
	served := func(from string) float64 {
		return r.proxyMetric(t, "k8s_image_swapper_proxy_requests_total", map[string]string{"served_from": from})
	}

	t.Run("swapped and served from the target", func(t *testing.T) {
		x := src.Addr + "/apps/x:1"
		want := pushImage(t, x, appImage(t, 1<<20, 2))
		fromTarget := served("target")
		pod := createPod(ctx, t, n.Client, "apps", "a", x)
		if got := pod.Spec.Containers[0].Image; got != toTarget(x) {
			t.Fatalf("pod image %q, want the target's %q", got, toTarget(x))
		}
		n.podRunning(ctx, t, "apps", "a")
		if got := served("target") - fromTarget; got < 1 {
			t.Errorf("the pull did not go through the proxy (%v requests served from the target)", got)
		}
		if d, err := digestIn(t, toTarget(x)); err != nil || d != want {
			t.Errorf("the target has %s at %v (%v), want %s", toTarget(x), d, err, want)
		}

		// The node forgets the image; a second Pod is served from the target alone.
		n.deletePod(ctx, t, "apps", "a")
		if out, err := n.CRI.Crictl(t, ctx, "rmi", toTarget(x)); err != nil {
			t.Fatalf("crictl rmi: %v\n%s", err, out)
		}
		src.ResetLog()
		fromTarget = served("target")
		if got := createPod(ctx, t, n.Client, "apps", "b", x).Spec.Containers[0].Image; got != toTarget(x) {
			t.Fatalf("second pod image %q, want %q", got, toTarget(x))
		}
		n.podRunning(ctx, t, "apps", "b")
		if got := served("target") - fromTarget; got < 1 {
			t.Errorf("the second pull was not served from the target through the proxy (%v requests)", got)
		}
		if got := src.Count(http.MethodGet, "/v2/apps/x/manifests/") + src.Count(http.MethodGet, "/v2/apps/x/blobs/"); got != 0 {
			t.Errorf("the source served %d manifests and blobs to the second pull: %v", got, src.Requests())
		}
	})

	t.Run("the proxy pod runs the node proxy binary", func(t *testing.T) {
		// The kubelet's containers are processes of this machine.
		procs := processes(t, "/usr/local/bin/k8s-image-swapper-proxy", "proxy")
		if len(procs) == 0 {
			t.Fatal("no process runs /usr/local/bin/k8s-image-swapper-proxy proxy")
		}
		for pid, hwm := range procs {
			t.Logf("proxy pid %d: %s after the pulls", pid, hwm)
		}
	})

	t.Run("proxy deleted while a pod pulls", func(t *testing.T) {
		// Not sent to the webhook: the source image is pulled through the proxy, whose
		// source fetches the relay slows to 4 MiB/s a blob.
		z := slow.Addr + "/apps/z:1"
		img := appImage(t, 16<<20, 4)
		pushImage(t, src.Addr+"/apps/z:1", img)
		total := imageSize(t, img)
		slow.rate.Store(4 << 20)
		defer slow.rate.Store(0)
		sent := slow.blobSent.Load()
		pod := podSpec("d", z)
		pod.Labels = map[string]string{"k8s-image-swapper.io/skip": "true"}
		if _, err := n.Client.CoreV1().Pods("apps").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "the proxy fetching z's blobs", func() bool { return slow.blobSent.Load()-sent > 2<<20 })
		proxies := r.proxyPods(ctx, t)
		kubectl(t, n.kubeCluster, "delete", "pod", "-n", r.NS, "-l", "app.kubernetes.io/component=proxy", "--grace-period=0", "--force", "--wait=false")
		at := slow.blobSent.Load() - sent
		if at >= total {
			t.Fatalf("the pull had fetched all %d bytes before the proxy was deleted: not a pull in progress", total)
		}
		t.Logf("proxy deleted after %d of %d bytes", at, total)
		n.podRunning(ctx, t, "apps", "d")
		// The DaemonSet brings the proxy back.
		waitFor(ctx, t, "a new proxy pod Ready", func() bool {
			for _, p := range r.proxyPods(ctx, t) {
				if p.UID != proxies[0].UID && podReady(&p) {
					return true
				}
			}
			return false
		})
	})

	t.Run("upgrade, then pull-time fallback", func(t *testing.T) {
		proxies := r.proxyPods(ctx, t)
		r.upgrade(ctx, t, values(config("always", "none", "info")))
		if now := r.proxyPods(ctx, t); len(now) != 1 || now[0].UID == proxies[0].UID {
			t.Errorf("the proxy was not restarted by a change of its config")
		}
		x := src.Addr + "/apps/x:1"
		// A Ready webhook pod is not yet one the API server reaches through the Service (its endpoints
		// and kube-proxy's rules follow it), and until then failurePolicy Ignore admits pods unchanged:
		// dry-run creates go through the webhook until one comes back swapped.
		waitFor(ctx, t, "the upgraded webhook answering through its Service", func() bool {
			p, err := n.Client.CoreV1().Pods("apps").Create(ctx, podSpec("e", x), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err == nil && p.Spec.Containers[0].Image == toTarget(x)
		})
		if got := createPod(ctx, t, n.Client, "apps", "e", x).Spec.Containers[0].Image; got != toTarget(x) {
			t.Errorf("after the upgrade: pod image %q, want %q", got, toTarget(x))
		}
		n.podRunning(ctx, t, "apps", "e")

		y := src.Addr + "/apps/y:1"
		want := pushImage(t, y, appImage(t, 1<<20, 2))
		if _, err := digestIn(t, toTarget(y)); err == nil {
			t.Fatalf("%s is in the target before any pull", toTarget(y))
		}
		fallback := served("fallback")
		if got := createPod(ctx, t, n.Client, "apps", "c", y).Spec.Containers[0].Image; got != toTarget(y) {
			t.Fatalf("pod image %q, want %q (imageSwapPolicy always)", got, toTarget(y))
		}
		p := n.podRunning(ctx, t, "apps", "c")
		if got := served("fallback") - fallback; got < 1 {
			t.Errorf("the proxy served %v requests as fallback to the source", got)
		}
		if id := p.Status.ContainerStatuses[0].ImageID; !strings.Contains(id, want.String()) {
			t.Errorf("the pod runs %s, want %s", id, want)
		}
	})

	t.Run("uninstall restores the node", func(t *testing.T) {
		r.helm(ctx, t, "uninstall", r.Name, "--namespace", r.NS, "--wait", "--timeout", "5m")
		if d := diffSnapshots(before, treeSnapshot(t, n.CRI.HostsDir)); d != "" {
			t.Errorf("helm uninstall left the certs folder changed:\n%s", d)
		}
		ds, err := n.Client.AppsV1().DaemonSets(r.NS).List(ctx, metav1.ListOptions{})
		if err != nil || len(ds.Items) != 0 {
			t.Errorf("DaemonSets left after uninstall: %v (%v)", ds, err)
		}
	})
}

// checkInstall: Ready, hosts.toml written, helm test, and the image's own version.
func checkInstall(ctx context.Context, t *testing.T, r *swapperRelease, index v1.ImageIndex, hosts ...string) {
	n := r.node
	r.waitReady(ctx, t)
	for _, h := range hosts {
		b, err := os.ReadFile(filepath.Join(n.CRI.HostsDir, h, "hosts.toml"))
		if err != nil || !strings.Contains(string(b), "http://127.0.0.1:"+r.ProxyPort) {
			t.Errorf("hosts.toml of %s does not point at the proxy: %q (%v)", h, b, err)
		}
	}
	r.helm(ctx, t, "test", r.Name, "--namespace", r.NS, "--timeout", "3m")

	m, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	version := m.Annotations["org.opencontainers.image.version"]
	pod := podSpec("version", r.node.Infra.Addr+"/k8s-image-swapper:e2e")
	pod.Spec.Containers[0].Args = []string{"version"}
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := n.Client.CoreV1().Pods(r.NS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the version pod to finish", func() bool {
		p, err := n.Client.CoreV1().Pods(r.NS).Get(ctx, "version", metav1.GetOptions{})
		return err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed)
	})
	out := kubectl(t, n.kubeCluster, "logs", "-n", r.NS, "version")
	if version == "" || !strings.Contains(out, "k8s-image-swapper "+version) {
		t.Errorf("`k8s-image-swapper version` in the image printed %q, want version %q", out, version)
	}
	n.deletePod(ctx, t, r.NS, "version")
}

// deletePod deletes a pod at once and waits until it is gone.
func (n *kubeNode) deletePod(ctx context.Context, t testing.TB, ns, name string) {
	t.Helper()
	zero := int64(0)
	if err := n.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	waitFor(ctx, t, "pod "+ns+"/"+name+" gone", func() bool {
		_, err := n.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// imageSize is the sum of an image's layer sizes (what a pull fetches).
func imageSize(t testing.TB, img v1.Image) int64 {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// processes are the processes of this machine whose command line starts
// with args, and the VmHWM line of each.
func processes(t *testing.T, args ...string) map[int]string {
	t.Helper()
	want := strings.Join(args, "\x00") + "\x00"
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	found := map[int]string{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmdline), want) {
			continue
		}
		found[pid] = "VmHWM unknown"
		status, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "status"))
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				found[pid] = strings.Join(strings.Fields(l), " ")
			}
		}
	}
	return found
}
