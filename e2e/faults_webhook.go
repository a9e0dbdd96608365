//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook/webhooktest"
)

// faultWebhook is the webhook binary with its TLS files and config, so it
// can be killed and started again on the same address.
type faultWebhook struct {
	Addr, certFile, keyFile, config string
	CA                              *webhooktest.CA
	bin                             string
}

// newFaultWebhook writes the serving certificate and a config whose source
// and target are plain-HTTP registries.
func newFaultWebhook(t *testing.T, source, target string) *faultWebhook {
	t.Helper()
	dir := t.TempDir()
	ca, err := webhooktest.NewCA("e2e fault webhook CA")
	if err != nil {
		t.Fatal(err)
	}
	w := &faultWebhook{CA: ca, bin: swapperbin.Path(t), config: filepath.Join(dir, "config.yaml")}
	if w.certFile, w.keyFile, err = ca.WriteServing(dir, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	writeKubeFile(t, w.config, []byte(fmt.Sprintf(`logLevel: info
logFormat: json
imageSwapPolicy: exists
imageCopyPolicy: delayed
source:
  registries:
    - type: generic
      generic: {registry: %q, insecure: true}
target:
  type: generic
  generic: {registry: %q, insecure: true}
`, source, target)))
	return w
}

// start runs the webhook (again) and waits until it is ready.
func (w *faultWebhook) start(t *testing.T) *webhookProc {
	t.Helper()
	return startWebhook(t, w.bin, w.CA, w.Addr, "--config", w.config, "--listen-address", w.Addr,
		"--tls-cert-file", w.certFile, "--tls-key-file", w.keyFile)
}

// registerFaultWebhook is registerWebhook with a chosen failure policy and
// timeout (Fail makes a webhook that misses the deadline fail the pod).
func registerFaultWebhook(ctx context.Context, t *testing.T, c kubernetes.Interface, url string, caPEM []byte,
	policy admissionregistrationv1.FailurePolicyType, timeoutSeconds int32) {
	t.Helper()
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	_, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "k8s-image-swapper"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "pods.k8s-image-swapper.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			FailurePolicy:           &policy,
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeoutSeconds,
			AdmissionReviewVersions: []string{"v1"},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}
