//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// TestOriginalChartRBAC runs the webhook on a real kube-apiserver under
// exactly the rules of the original chart's ClusterRole with
// secretReader.enabled (secrets: watch and get; serviceaccounts: get), which
// allow no informer cache: the webhook must become ready, say so once, and
// copy a private image with the pod's pull secret read with get.
func TestOriginalChartRBAC(t *testing.T) {
	kube := startKube(t)
	bin := swapperbin.Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := kube.Client

	const user, pass = "puller", "s3cret"
	private := registryproc.Start(t, registryproc.Options{Htpasswd: registryproc.Htpasswd(t, user, pass)})
	dst := registryproc.Start(t, registryproc.Options{})
	image := private.Addr + "/team/private:v1"
	pushAuth(t, image, images.Image(t, 4096, 1, "linux/amd64"), &authn.Basic{Username: user, Password: pass})

	createNamespace(ctx, t, c, "apps")
	auths, _ := json.Marshal(map[string]any{"auths": map[string]any{private.Addr: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
	mustCreate(t, func() error {
		_, err := c.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: auths}}, metav1.CreateOptions{})
		return err
	})
	// The original chart's templates/clusterrole.yaml and clusterrolebinding.yaml.
	token := serviceAccountWithRules(ctx, t, c, "k8s-image-swapper", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"watch", "get"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}},
	})
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeKubeFile(t, kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %s, certificate-authority-data: %s}
users:
- name: swapper
  user: {token: %s}
contexts:
- name: e2e
  context: {cluster: e2e, user: swapper}
current-context: e2e
`, kube.Host, base64.StdEncoding.EncodeToString(kube.CAPEM), token)))

	// startConfiguredWebhook returns once /readyz answers 200.
	wh, _ := startConfiguredWebhook(t, bin, kubeconfig, fmt.Sprintf(`dryRun: false
source:
  registries:
    - type: generic
      generic: {registry: "%s", insecure: true}
target:
  type: generic
  generic: {registry: "%s", insecure: true}
`, private.Addr, dst.Addr), "--secret-reader")
	if n := strings.Count(wh.logText(), "RBAC allows secrets: get only, service accounts: get only"); n != 1 {
		t.Errorf("the rights were logged %d times, want once:\n%s", n, wh.logText())
	}

	review := strings.Replace(string(v1beta1Review(image)), `"spec":{`, `"spec":{"imagePullSecrets":[{"name":"regcred"}],`, 1)
	patch := (&originalProc{base: wh.base}).review(t, []byte(review))
	if patch != "" {
		t.Errorf("an image the target lacks was swapped: %s", patch)
	}
	want := imageDigest(t, image, &authn.Basic{Username: user, Password: pass})
	waitInRegistry(ctx, t, dst.Addr+"/"+strings.Replace(image, ":", "_", 1), want)
}
