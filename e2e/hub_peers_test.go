//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/peers"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy/hub"
)

// In a cluster the hub replicas find each other in their Service's
// EndpointSlices (a real kube-apiserver here; the slices are written by the
// test, as the EndpointSlice controller would): a repository the other
// replica owns is fetched by that owner, and once the owner's endpoint is
// not ready the replica asked fetches it itself.
func TestHubPeersFromEndpointSlices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kube := startKube(t)
	const ns, svc = "swapper", "hub"
	if _, err := kube.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	// EndpointSlices take no loopback address: the replicas listen on a
	// bridge the test creates, on ports of their own, one slice each.
	bridge := startNodeNet(t)
	addrs := []string{bridge.FreeAddr(t), bridge.FreeAddr(t)}

	slice := func(i int, ready bool) *discoveryv1.EndpointSlice {
		ip, p, _ := net.SplitHostPort(addrs[i])
		port, _ := strconv.Atoi(p)
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", svc, i), Namespace: ns,
				Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(port))}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: new(ready)}}},
		}
	}
	slices := kube.Client.DiscoveryV1().EndpointSlices(ns)
	for i := range addrs {
		if _, err := slices.Create(ctx, slice(i, true), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	hubs := make([]*proxyProcess, len(addrs))
	for i, a := range addrs {
		hubs[i] = startHubProcess(t, hubConfig(src.Addr, tgt.Addr, ""), a,
			"--peers-service", svc, "--namespace", ns, "--kubeconfig", kube.Kubeconfig, "--self", a)
	}
	for i, h := range hubs {
		waitMetric(t, h, "k8s_image_swapper_hub_peers", 2, fmt.Sprintf("hub %d to see both replicas", i))
	}
	node := startProxyProcess(t, hubConfig(src.Addr, tgt.Addr, "http://"+addrs[0]))

	// A repository the second replica owns, by the replicas' own hashing.
	both := peers.New(addrs[0], addrs)
	repo := ""
	for i := 0; repo == ""; i++ {
		r := fmt.Sprintf("e2e/owned%d", i)
		if owner, _ := hub.Owner(both, fetch.Source{Registry: src.Addr, Repo: r}); owner == addrs[1] {
			repo = r
		}
	}
	platform := "linux/" + runtime.GOARCH
	fetched := func(h *proxyProcess) float64 {
		return h.metric(t, "k8s_image_swapper_proxy_source_fetches_total", map[string]string{"kind": "blob"})
	}
	pull := func(repo string) (first, second float64) {
		t.Helper()
		img := images.Image(t, 256<<10, 2, platform)
		images.Push(t, src.Addr+"/"+repo+":v1", img)
		a, b := fetched(hubs[0]), fetched(hubs[1])
		src.ResetLog()
		pullAllAtOnce(ctx, t, []*proxyProcess{node}, src.Addr, repo, "v1")
		if got := blobGETs(t, src, repo, img); !eachIs(got, 1) {
			t.Errorf("%s: origin GETs per blob %v, want 1 each", repo, got)
		}
		return fetched(hubs[0]) - a, fetched(hubs[1]) - b
	}
	if first, second := pull(repo); first != 0 || second == 0 {
		t.Errorf("%s, owned by the second replica, asked of the first: blobs fetched by the first %v, the second %v; want the second alone", repo, first, second)
	}

	// The owner's endpoint goes not ready: the first replica serves alone.
	if _, err := slices.Update(ctx, slice(1, false), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, hubs[0], "k8s_image_swapper_hub_peers", 1, "hub 0 to drop the replica that is not ready")
	if first, second := pull(repo + "-again"); first == 0 || second != 0 {
		t.Errorf("with the second replica not ready: blobs fetched by the first %v, the second %v; want the first alone", first, second)
	}
}

// waitMetric waits until p's metric is want.
func waitMetric(t *testing.T, p *proxyProcess, metric string, want float64, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.metric(t, metric, nil) != want {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s (%s = %v, want %v):\n%s", what, metric, p.metric(t, metric, nil), want, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
