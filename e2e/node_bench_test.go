//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/linkrelay"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// The remote link of BenchmarkPodStart: what a registry across a region or the internet
// gives one node.
const (
	remoteRate  = 50_000_000            // bytes a second, each way
	remoteDelay = 10 * time.Millisecond // each way: 20 ms added to every round trip
)

// BenchmarkPodStart times Pod create to Running on a real node (startNode, containerd 1.6;
// BENCH_NODE_CONTAINERD=2 for 2.x) with the chart installed from the image `make image`
// built, for a new 256 MiB image of 4 x 64 MiB random layers each time:
//
//   - direct-s: the image pulled straight from the source (a registry host the node does not
//     send through the proxy, serving the same storage): the reference;
//   - cold-s: another new image of the same size through the node proxy, the target empty
//     (served from the source while the proxy copies it into the target);
//   - warm-s: that image again once it is in the target, after the node forgot it: served
//     from the target through the proxy.
//
// The pods carry the skip label, so the webhook leaves their images alone: this measures
// the node side. loopback: the source on the node's address; remote: the source behind a
// relay of 50 MB/s with 20 ms added to each round trip. The target is on the node's address
// in both. Run with -benchtime 1x -count 5 (make bench-node): -count repeats each
// sub-benchmark on the one node this function builds.
func BenchmarkPodStart(b *testing.B) {
	index := swapperImage(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	n := startNode(ctx, b, nodeOptions{V2: os.Getenv("BENCH_NODE_CONTAINERD") == "2"})
	src := registryproc.Start(b, registryproc.Options{Addr: n.Net.FreeAddr(b)})
	// The same storage on a second address: what the node pulls directly.
	direct := registryproc.Start(b, registryproc.Options{Addr: n.Net.FreeAddr(b), Dir: src.Dir})
	tgt := registryproc.Start(b, registryproc.Options{Addr: n.Net.FreeAddr(b)})
	remote := linkrelay.Start(b, n.Net.FreeAddr(b), src.Addr, remoteRate, remoteDelay)
	remoteDirect := linkrelay.Start(b, n.Net.FreeAddr(b), direct.Addr, remoteRate, remoteDelay)
	for _, h := range []string{direct.Addr, remoteDirect.Addr} {
		n.WriteHostsToml(b, h, plainHostsToml(h))
	}
	repo := n.Infra.Addr + "/k8s-image-swapper"
	pushImage(b, repo+":e2e", index)
	r := &swapperRelease{node: n, helmBin: kubeTool(b, "helm"), Name: "swapper", NS: "swapper", ProxyPort: freePort(b)}
	r.install(ctx, b, nodeValues(repo, n.CRI.HostsDir, n.CRI.Config, r.ProxyPort, fmt.Sprintf(`dryRun: false
source:
  registries:
    - {type: generic, generic: {registry: %[1]q, insecure: true}}
    - {type: generic, generic: {registry: %[2]q, insecure: true}}
target:
  type: generic
  generic: {registry: %[3]q, insecure: true}
proxy:
  registries: [%[1]q, %[2]q]
`, src.Addr, remote.Addr, tgt.Addr), src.Addr, remote.Addr, tgt.Addr, direct.Addr, remoteDirect.Addr))
	n.namespace(ctx, b, "bench")

	for _, link := range []struct{ name, proxied, direct string }{
		{"loopback", src.Addr, direct.Addr},
		{"remote", remote.Addr, remoteDirect.Addr},
	} {
		b.Run(link.name, func(b *testing.B) {
			var directD, cold, warm time.Duration
			for i := 0; i < b.N; i++ {
				// -count repeats each sub-benchmark on this one node: names never repeat.
				name := fmt.Sprintf("%s-%s", link.name, randomHex(b)[:8])
				dImg, cImg := appImage(b, 64<<20, 4), appImage(b, 64<<20, 4)
				pushImage(b, src.Addr+"/bench/d-"+name+":1", dImg)
				want := pushImage(b, src.Addr+"/bench/c-"+name+":1", cImg)
				ref := link.proxied + "/bench/c-" + name + ":1"

				// Each pull must have fetched every layer from where it claims.
				size := imageSize(b, cImg) - layerSize(b, cImg, 0) // the busybox layer is on the node already
				fetched := func(origin string) float64 {
					return r.proxyMetric(b, "k8s_image_swapper_proxy_bytes_total", map[string]string{"origin": origin})
				}
				direct.ResetLog()
				directD += n.timePodStart(ctx, b, "bench", "d-"+name, link.direct+"/bench/d-"+name+":1", dImg)
				if got := direct.Count("GET", "/v2/bench/d-"+name+"/blobs/"); got < 5 {
					b.Fatalf("the direct pull fetched %d blobs from the source, want the config and 4 layers", got)
				}
				// Through the proxy: from the source, or from the target for a layer the
				// proxy's copy put there while containerd was still busy with others.
				before := fetched("source") + fetched("target")
				cold += n.timePodStart(ctx, b, "bench", "c-"+name, ref, cImg)
				if got := fetched("source") + fetched("target") - before; got < float64(size) {
					b.Fatalf("the cold pull got %v bytes through the proxy, want the image's %d", got, size)
				}
				proxyWaitTarget(b, tgt.Addr+"/"+mirrorRepo(link.proxied, "bench/c-"+name)+":1", want)
				n.forget(ctx, b, "bench", "c-"+name, ref, cImg)
				before = fetched("target")
				warm += n.timePodStart(ctx, b, "bench", "w-"+name, ref, cImg)
				if got := fetched("target") - before; got < float64(size) {
					b.Fatalf("the warm pull got %v bytes from the target through the proxy, want the image's %d", got, size)
				}
				n.forget(ctx, b, "bench", "w-"+name, ref, cImg)
				n.forget(ctx, b, "bench", "d-"+name, link.direct+"/bench/d-"+name+":1", dImg)
			}
			runs := float64(b.N)
			b.ReportMetric(directD.Seconds()/runs, "direct-s")
			b.ReportMetric(cold.Seconds()/runs, "cold-s")
			b.ReportMetric(warm.Seconds()/runs, "warm-s")
		})
	}
}

// timePodStart creates a pod of image (with the webhook's skip label) and times it from the
// create call to the Running phase, as a watch sees it; it checks the pod runs img.
func (n *kubeNode) timePodStart(ctx context.Context, b testing.TB, ns, name, image string, img v1.Image) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	w, err := n.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	pod := podSpec(name, image)
	pod.Labels = map[string]string{"k8s-image-swapper.io/skip": "true"}
	start := time.Now()
	if _, err := n.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	for ev := range w.ResultChan() {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		switch p.Status.Phase {
		case corev1.PodRunning:
			d := time.Since(start)
			want, _ := img.Digest()
			if len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].ImageID != "" &&
				!strings.Contains(p.Status.ContainerStatuses[0].ImageID, want.String()) {
				b.Fatalf("pod %s runs %s, want %s", name, p.Status.ContainerStatuses[0].ImageID, want)
			}
			return d
		case corev1.PodFailed, corev1.PodSucceeded:
			b.Fatalf("pod %s ended %s", name, p.Status.Phase)
		}
	}
	b.Fatalf("pod %s not Running in time:\n%s", name, n.describe(b, ns, name))
	return 0
}

// forget deletes the pod, its sandbox and containers, and its image from the node, layers
// and snapshots included, so that the next pull fetches and unpacks every layer again
// (containerd skips fetching a layer whose snapshot is still there).
func (n *kubeNode) forget(ctx context.Context, b testing.TB, ns, name, image string, img v1.Image) {
	b.Helper()
	n.deletePod(ctx, b, ns, name)
	m, err := img.Manifest()
	if err != nil {
		b.Fatal(err)
	}
	top := topChainID(b, img)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// The kubelet tears the pod down on its own schedule (its dead containers stay until its
	// garbage collection): remove them, and the image, until containerd holds nothing of it.
	waitFor(ctx, b, "containerd to drop the layers and snapshots of "+image, func() bool {
		ids, _ := n.CRI.Crictl(b, ctx, "pods", "--namespace", ns, "--name", "^"+name+"$", "-q")
		for _, id := range strings.Fields(ids) {
			_, _ = n.CRI.Crictl(b, ctx, "rmp", "--force", id)
		}
		_, _ = n.CRI.Crictl(b, ctx, "rmi", image)
		content, err1 := n.CRI.Ctr(ctx, "--namespace", "k8s.io", "content", "ls", "-q")
		snaps, err2 := n.CRI.Ctr(ctx, "--namespace", "k8s.io", "snapshots", "ls")
		if err1 != nil || err2 != nil || strings.Contains(snaps, top) {
			return false
		}
		for _, l := range m.Layers[1:] { // the first is the shared busybox layer
			if strings.Contains(content, l.Digest.String()) {
				return false
			}
		}
		return true
	})
}

// topChainID is the snapshot name of img's whole layer stack (the OCI chain ID).
func topChainID(b testing.TB, img v1.Image) string {
	cf, err := img.ConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	chain := ""
	for _, d := range cf.RootFS.DiffIDs {
		if chain == "" {
			chain = d.String()
			continue
		}
		sum := sha256.Sum256([]byte(chain + " " + d.String()))
		chain = "sha256:" + hex.EncodeToString(sum[:])
	}
	return chain
}

// layerSize is the size of layer i of img.
func layerSize(b testing.TB, img v1.Image, i int) int64 {
	m, err := img.Manifest()
	if err != nil {
		b.Fatal(err)
	}
	return m.Layers[i].Size
}
