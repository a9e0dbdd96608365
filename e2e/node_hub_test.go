//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// TestNodeHub installs the chart with hub.enabled and no target (the embedded store) on a
// real node, containerd 1.6: the no-cloud-account install. The store lives in the hub (a
// StatefulSet); the webhook asks the hub (with the chart's projected token, which the hub
// reviews: a wrong audience leaves the Pod unswapped) and rewrites a Pod's image to the hub's store, the
// Pod runs (containerd through the node proxy, which reaches the hub by its Service's
// address); a second Pod, after the node forgot the image, is served from the hub's store
// without the source.
func TestNodeHub(t *testing.T) {
	index := swapperImage(t)
	helmBin := kubeTool(t, "helm")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	n := startNode(ctx, t, nodeOptions{})
	src := registryproc.Start(t, registryproc.Options{Addr: n.Net.FreeAddr(t)})
	repo := n.Infra.Addr + "/k8s-image-swapper"
	pushImage(t, repo+":e2e", index)
	r := &swapperRelease{node: n, helmBin: helmBin, Name: "swapper", NS: "swapper", ProxyPort: freePort(t)}
	cfg := `dryRun: false
logLevel: debug
imageSwapPolicy: exists
imageCopyPolicy: immediate
imageCopyDeadline: 60s
source:
  registries:
    - {type: generic, generic: {registry: "` + src.Addr + `", insecure: true}}
proxy:
  registries: ["` + src.Addr + `"]
`
	values := nodeValues(repo, n.CRI.HostsDir, n.CRI.Config, r.ProxyPort, cfg, src.Addr) +
		"hub:\n  enabled: true\n  persistence: {enabled: false}\n"
	r.install(ctx, t, values)
	n.namespace(ctx, t, "apps")

	hubHost := "swapper-k8s-image-swapper-hub.swapper.svc:7440"
	x := src.Addr + "/apps/x:1"
	want := pushImage(t, x, appImage(t, 1<<20, 2))
	inHub := hubHost + "/" + strings.Replace(x, ":", "_", 1)
	pod := createPod(ctx, t, n.Client, "apps", "a", x)
	if got := pod.Spec.Containers[0].Image; got != inHub {
		t.Fatalf("pod image %q, want the hub's store %q\n%s", got, inHub, r.state(t))
	}
	p := n.podRunning(ctx, t, "apps", "a")
	if id := p.Status.ContainerStatuses[0].ImageID; !strings.Contains(id, want.String()) {
		t.Errorf("the pod runs %s, want %s", id, want)
	}
	if got := r.proxyMetric(t, "k8s_image_swapper_proxy_requests_total", map[string]string{"served_from": "target"}); got < 1 {
		t.Errorf("the node proxy served %v requests from the hub's store", got)
	}

	// The node forgets the image: the second Pod is served from the hub's store alone.
	n.deletePod(ctx, t, "apps", "a")
	if out, err := n.CRI.Crictl(t, ctx, "rmi", inHub); err != nil {
		t.Fatalf("crictl rmi: %v\n%s", err, out)
	}
	src.ResetLog()
	if got := createPod(ctx, t, n.Client, "apps", "b", x).Spec.Containers[0].Image; got != inHub {
		t.Fatalf("second pod image %q, want %q", got, inHub)
	}
	n.podRunning(ctx, t, "apps", "b")
	if got := src.Count(http.MethodGet, "/v2/apps/x/manifests/") + src.Count(http.MethodGet, "/v2/apps/x/blobs/"); got != 0 {
		t.Errorf("the source served %d manifests and blobs to the second pull: %v", got, src.Requests())
	}
}
