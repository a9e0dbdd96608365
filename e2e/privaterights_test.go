//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// TestPrivateImageKeptWithoutRights: the target holds the copy of an image
// whose source wants a login (source.privateImages: check, the default).
// A pod in namespace a whose pull secret (its own, or its service
// account's) reads it at the source is swapped to the copy; a pod in
// namespace b without one keeps the original, so that the kubelet checks
// its rights against the source rather than the node pulling the copy
// with the node's credentials. A public image is swapped for both.
func TestPrivateImageKeptWithoutRights(t *testing.T) {
	kube := startKube(t)
	bin := swapperbin.Path(t)
	const user, pass = "puller", "s3cret"
	private := registryproc.Start(t, registryproc.Options{Htpasswd: registryproc.Htpasswd(t, user, pass)})
	public := registryproc.Start(t, registryproc.Options{})
	dst := registryproc.Start(t, registryproc.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	toTarget := func(ref string) string { return dst.Addr + "/" + strings.Replace(ref, ":", "_", 1) }
	secretImg, publicImg := private.Addr+"/team/secret:v1", public.Addr+"/team/open:v1"
	creds := &authn.Basic{Username: user, Password: pass}
	pushAuth(t, secretImg, images.Image(t, 4096, 1, "linux/amd64"), creds)
	images.Push(t, publicImg, images.Image(t, 4096, 1, "linux/amd64"))
	// Both are in the target already: only the rights decide.
	images.Push(t, toTarget(secretImg), remoteImage(t, secretImg, creds))
	images.Push(t, toTarget(publicImg), remoteImage(t, publicImg, nil))

	wh, ca := startConfiguredWebhook(t, bin, kube.Kubeconfig, fmt.Sprintf(`logLevel: debug
logFormat: json
imageSwapPolicy: exists
imageCopyPolicy: delayed
secretReader: true
source:
  registries:
    - type: generic
      generic: {registry: "%s", insecure: true}
    - type: generic
      generic: {registry: "%s", insecure: true}
target:
  type: generic
  generic: {registry: "%s", insecure: true}
`, private.Addr, public.Addr, dst.Addr))

	c := kube.Client
	for _, ns := range []string{"apps", "a", "b"} {
		createNamespace(ctx, t, c, ns)
	}
	auths, _ := json.Marshal(map[string]any{"auths": map[string]any{private.Addr: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
	mustCreate(t, func() error {
		_, err := c.CoreV1().Secrets("a").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: auths}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := c.CoreV1().ServiceAccounts("a").Create(ctx, &corev1.ServiceAccount{
			ObjectMeta:       metav1.ObjectMeta{Name: "builder"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}}, metav1.CreateOptions{})
		return err
	})
	registerWebhook(ctx, t, c, wh.base+"/webhook", ca.CertPEM)
	waitWebhookActive(ctx, t, c, publicImg, toTarget(publicImg))

	pod := func(ns, name, img, secret, sa string) string {
		t.Helper()
		p := podSpec(name, img)
		if secret != "" {
			p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: secret}}
		}
		p.Spec.ServiceAccountName = sa
		got, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got.Spec.Containers[0].Image
	}
	// swappedSoon creates pods until one is swapped: the webhook's caches
	// see a new secret or service account a moment after it is created.
	swappedSoon := func(ns, name, secret, sa string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; ; i++ {
			img := pod(ns, fmt.Sprintf("%s-%d", name, i), secretImg, secret, sa)
			if img == toTarget(secretImg) {
				return
			}
			if img != secretImg {
				t.Fatalf("pod image %q, want the original or the copy", img)
			}
			if time.Now().After(deadline) {
				t.Fatalf("a pod in %s with the pull secret was never swapped to the copy:\n%s", ns, wh.logText())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	keptPrivate := func() float64 {
		v, err := scrapeGauge(wh.client, wh.base+"/metrics", `k8s_image_swapper_image_decisions_total{decision="kept_private"}`)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	t.Run("namespace a, pod's own pull secret: swapped", func(t *testing.T) {
		swappedSoon("a", "with-secret", "regcred", "")
	})
	t.Run("namespace a, service account's pull secret: swapped", func(t *testing.T) {
		swappedSoon("a", "with-sa", "", "builder")
	})
	t.Run("namespace b, no pull secret: original kept", func(t *testing.T) {
		before := keptPrivate()
		if got := pod("b", "no-secret", secretImg, "", ""); got != secretImg {
			t.Fatalf("a pod without rights to %s was given %q, want the original", secretImg, got)
		}
		// A secret of the same name in another namespace is not the pod's.
		if got := pod("b", "foreign-secret", secretImg, "regcred", ""); got != secretImg {
			t.Fatalf("a pod naming another namespace's secret was given %q, want the original", got)
		}
		if d := keptPrivate() - before; d != 2 {
			t.Errorf("kept_private rose by %v, want 2", d)
		}
	})
	t.Run("namespace b, public image: swapped", func(t *testing.T) {
		if got := pod("b", "public", publicImg, "", ""); got != toTarget(publicImg) {
			t.Fatalf("public image %q, want %q", got, toTarget(publicImg))
		}
	})
}
