//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy/hub"
)

// The hub copies with its own credentials for the sources, after the
// webhook has checked that the pod may read the image. Anyone else who
// reaches the hub could otherwise have it copy a private image into the
// target, where every node pulls with the node's credentials. With
// --api-callers (the chart's: the webhook's ServiceAccount) a real
// kube-apiserver reviews each caller's token: no token, a forged one, one
// for the API server's audience, or another ServiceAccount's is refused
// (401, 403) by both replicas, and the hub does not touch the source; the
// webhook with its token file has the hub copy, through the replica that
// does not own the repository too.
func TestHubAPICallers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kube := startKube(t)
	const ns = "swapper"
	if _, err := kube.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []string{"swapper", "intruder"} {
		if _, err := kube.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	token := func(sa, audience string) string {
		tr, err := kube.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token of %s for %s: %v", sa, audience, err)
		}
		return tr.Status.Token
	}

	const user, pass = "hub", "s3cret"
	private := registryproc.Start(t, registryproc.Options{Htpasswd: registryproc.Htpasswd(t, user, pass)})
	public := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	sources := fmt.Sprintf(`source:
  registries:
    - {type: generic, generic: {registry: %q, insecure: true, username: %q, password: %q}}
    - {type: generic, generic: {registry: %q, insecure: true}}
target:
  type: generic
  generic: {registry: %q, insecure: true}
proxy:
  registries: [%q, %q]
`, private.Addr, user, pass, public.Addr, tgt.Addr, private.Addr, public.Addr)
	addrs := []string{registryproc.FreeAddr(t), registryproc.FreeAddr(t)}
	hubs := make([]*proxyProcess, len(addrs))
	for i, a := range addrs {
		hubs[i] = startHubProcess(t, sources, a, "--peers", strings.Join(addrs, ","), "--self", a,
			"--kubeconfig", kube.Kubeconfig, "--api-callers", "system:serviceaccount:"+ns+":swapper")
	}
	answered := func() float64 {
		n := 0.0
		for _, h := range hubs {
			n += h.metric(t, "k8s_image_swapper_hub_api_requests_total", nil)
		}
		return n
	}

	platform := "linux/" + runtime.GOARCH
	secret := private.Addr + "/e2e/secret:v1"
	pushAuth(t, secret, images.Image(t, 64<<10, 2, platform), &authn.Basic{Username: user, Password: pass})
	private.ResetLog()
	copyPrivate := func(hubAddr, auth string) int {
		t.Helper()
		u := "http://" + hubAddr + "/hub/v1/copy?" + url.Values{"image": {secret}, "policy": {"immediate"}, "deadline": {"20s"}}.Encode()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		what, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a forged token", "Bearer " + strings.Repeat("x", 40), http.StatusUnauthorized},
		{"the webhook's token for the API server", "Bearer " + token("swapper", "https://kubernetes.default.svc.cluster.local"), http.StatusUnauthorized},
		{"another ServiceAccount's token for the hub", "Bearer " + token("intruder", hub.Audience), http.StatusForbidden},
	} {
		for i, a := range addrs {
			if got := copyPrivate(a, c.auth); got != c.want {
				t.Errorf("hub %d, copy with %s: %d, want %d", i, c.what, got, c.want)
			}
		}
	}
	mirrored := "/v2/" + mirrorRepo(private.Addr, "e2e/secret") + "/manifests/"
	if n := tgt.Count(http.MethodPut, mirrored); n != 0 {
		t.Errorf("refused callers had the hub copy the private image: %d manifest PUTs", n)
	}
	if reqs := private.Requests(); len(reqs) != 0 {
		t.Errorf("refused callers had the hub ask the private source: %d requests, first %v", len(reqs), reqs[:min(3, len(reqs))])
	}
	if n := answered(); n != 0 {
		t.Errorf("the hubs answered %v refused questions", n)
	}

	// The webhook with the chart's token file: the hub answers and copies.
	file := filepath.Join(t.TempDir(), "token")
	writeKubeFile(t, file, []byte(token("swapper", hub.Audience)))
	cfg := "imageSwapPolicy: exists\nimageCopyPolicy: immediate\nimageCopyDeadline: 20s\n" + sources +
		fmt.Sprintf("hub:\n  url: %q\n  timeout: 5s\n", "http://"+addrs[0])
	web := startChartWebhook(t, swapperbin.Path(t), newServingTLS(t), "a", cfg, "--hub-token-file", file)
	images.Push(t, public.Addr+"/e2e/app:v1", images.Image(t, 64<<10, 2, platform))
	if got, want := web.admit(t, "apps", public.Addr+"/e2e/app:v1", nil), tgt.Addr+"/"+mirrorRepo(public.Addr, "e2e/app")+":v1"; got != want {
		t.Fatalf("patched to %q, want %q", got, want)
	}
	if n := answered(); n < 1 {
		t.Errorf("the hubs answered none of the webhook's questions")
	}
	// The allowed caller may have the private image copied: the token, not
	// something else, refused the others.
	if got := copyPrivate(addrs[1], "Bearer "+token("swapper", hub.Audience)); got != http.StatusOK {
		t.Errorf("copy with the webhook's token: %d, want 200", got)
	}
	if n := tgt.Count(http.MethodPut, mirrored); n != 1 {
		t.Errorf("%d manifest PUTs of the private image after the allowed copy, want 1", n)
	}

	// The file read again at each question: another ServiceAccount's token
	// in it is refused, and the webhook copies itself (the hub never costs
	// availability).
	before := answered()
	writeKubeFile(t, file, []byte(token("intruder", hub.Audience)))
	images.Push(t, public.Addr+"/e2e/other:v1", images.Image(t, 64<<10, 1, platform))
	if got, want := web.admit(t, "apps", public.Addr+"/e2e/other:v1", nil), tgt.Addr+"/"+mirrorRepo(public.Addr, "e2e/other")+":v1"; got != want {
		t.Errorf("with the hub refusing: patched to %q, want %q (copied by the webhook)", got, want)
	}
	if n := answered(); n != before {
		t.Errorf("the hubs answered %v questions with the intruder's token", n-before)
	}
}
