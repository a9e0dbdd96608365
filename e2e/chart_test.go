//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The CRDs of the kinds the chart renders for cert-manager and the Prometheus Operator, reduced
// to what lets the API server accept the objects (no schema of their own).
const chartCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: certificates.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Certificate, plural: certificates, singular: certificate, listKind: CertificateList}
  versions:
    - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: issuers.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Issuer, plural: issuers, singular: issuer, listKind: IssuerList}
  versions:
    - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
    - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: podmonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PodMonitor, plural: podmonitors, singular: podmonitor, listKind: PodMonitorList}
  versions:
    - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
`

// TestChartOnKubeAPIServer: every rendering of the chart (defaults and each ci values file) is
// accepted by a real kube-apiserver in a server-side dry run, hooks included; then a real
// install and upgrade keep the generated webhook certificate.
func TestChartOnKubeAPIServer(t *testing.T) {
	helmBin := kubeTool(t, "helm")
	kube := startKube(t)
	chart := filepath.Join(repoRoot(), "charts", "k8s-image-swapper")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	crds := filepath.Join(dir, "crds.yaml")
	writeKubeFile(t, crds, []byte(chartCRDs))
	kubectl(t, kube, "apply", "-f", crds)
	kubectl(t, kube, "wait", "--for=condition=Established", "--timeout=60s", "-f", crds)

	const ns = "swapper"
	kubectl(t, kube, "create", "namespace", ns)
	// No controller-manager: make the namespace's default service account (the test pod's).
	kubectl(t, kube, "create", "serviceaccount", "default", "--namespace", ns)
	helm := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, helmBin, append(args, "--kubeconfig", kube.Kubeconfig)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}

	files, err := filepath.Glob(filepath.Join(chart, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci values files: %v", err)
	}
	for _, f := range append([]string{""}, files...) {
		name := "defaults"
		args := []string{"template", "rel", chart, "--namespace", ns}
		if f != "" {
			name = filepath.Base(f)
			args = append(args, "-f", f)
		}
		t.Run(name, func(t *testing.T) {
			manifest := filepath.Join(dir, name+".rendered.yaml")
			writeKubeFile(t, manifest, []byte(helm(args...)))
			out := kubectl(t, kube, "apply", "--dry-run=server", "--namespace", ns, "-f", manifest)
			if n := strings.Count(out, "(server dry run)"); n < 5 {
				t.Errorf("only %d objects accepted:\n%s", n, out)
			}
		})
	}

	// A real install, then an upgrade: the generated CA and serving certificate stay, and the
	// caBundle keeps trusting them.
	const release, installNS = "keep", "swapper-install"
	kubectl(t, kube, "create", "namespace", installNS)
	kubectl(t, kube, "create", "serviceaccount", "default", "--namespace", installNS)
	if notes := helm("install", release, chart, "--namespace", installNS); strings.Contains(notes, "dry run") {
		t.Errorf("the defaults' NOTES speak of a dry run:\n%s", notes)
	}
	secretName := release + "-k8s-image-swapper-tls"
	before, err := kube.Client.CoreV1().Secrets(installNS).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the install created no %s: %v", secretName, err)
	}
	mwcName := release + "-k8s-image-swapper"
	mwc, err := kube.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mwcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mwc.Webhooks[0].ClientConfig.CABundle, before.Data["ca.crt"]) {
		t.Fatalf("caBundle is not the Secret's CA after install")
	}
	// A values file kept from the original chart has dryRun: true: the NOTES say what that now means.
	notes := helm("upgrade", release, chart, "--namespace", installNS, "--set", "config.logLevel=debug", "--set", "config.dryRun=true")
	if !strings.Contains(notes, "WARNING: config.dryRun is true: a dry run") || !strings.Contains(notes, "Set config.dryRun=false to swap images") {
		t.Errorf("the NOTES of a dry run do not say so:\n%s", notes)
	}
	after, err := kube.Client.CoreV1().Secrets(installNS).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if !bytes.Equal(before.Data[k], after.Data[k]) {
			t.Errorf("helm upgrade replaced %s of %s", k, secretName)
		}
	}
	mwc, err = kube.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mwcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mwc.Webhooks[0].ClientConfig.CABundle, before.Data["ca.crt"]) {
		t.Errorf("helm upgrade changed the caBundle")
	}
	cm, err := kube.Client.CoreV1().ConfigMaps(installNS).Get(ctx, release+"-k8s-image-swapper", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["config.yml"], "logLevel: debug") {
		t.Errorf("the upgrade did not apply (config %v, %v)", cm.Data, err)
	}
	// Without a scheduler and kubelets the post-delete cleanup Job would never finish.
	helm("uninstall", release, "--namespace", installNS, "--no-hooks")
	if _, err := kube.Client.CoreV1().Secrets(installNS).Get(ctx, secretName, metav1.GetOptions{}); err == nil {
		t.Errorf("uninstall left %s", secretName)
	}

	// An upgrade from the original chart: a release whose Deployment has the name, selector and
	// container 1.11.0 renders is upgraded to this chart, and keeps its Deployment (a changed
	// selector would be refused: "field is immutable").
	const origRelease, origNS = "orig", "swapper-upgrade"
	kubectl(t, kube, "create", "namespace", origNS)
	kubectl(t, kube, "create", "serviceaccount", "default", "--namespace", origNS)
	old := filepath.Join(dir, "original-chart")
	if err := os.MkdirAll(filepath.Join(old, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeKubeFile(t, filepath.Join(old, "Chart.yaml"), []byte("apiVersion: v2\nname: k8s-image-swapper\nversion: 1.11.0\nappVersion: 1.5.10\n"))
	writeKubeFile(t, filepath.Join(old, "templates", "deployment.yaml"), []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-k8s-image-swapper
  labels: {app.kubernetes.io/name: k8s-image-swapper, app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/component: app}
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: k8s-image-swapper, app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/component: app}
  template:
    metadata:
      labels: {app.kubernetes.io/name: k8s-image-swapper, app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/component: app}
    spec:
      containers:
        - name: k8s-image-swapper
          image: ghcr.io/estahn/k8s-image-swapper:1.5.10
          args: [--config=/.k8s-image-swapper.yaml, --tls-cert-file=/usr/local/certificates/cert, --tls-key-file=/usr/local/certificates/key, --listen-address=:8443]
`))
	helm("install", origRelease, old, "--namespace", origNS)
	dep0, err := kube.Client.AppsV1().Deployments(origNS).Get(ctx, "orig-k8s-image-swapper", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	helm("upgrade", origRelease, chart, "--namespace", origNS, "-f", filepath.Join(chart, "ci", "original-defaults-values.yaml"))
	dep1, err := kube.Client.AppsV1().Deployments(origNS).Get(ctx, "orig-k8s-image-swapper", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep1.UID != dep0.UID || dep1.Generation == dep0.Generation {
		t.Errorf("the original's Deployment was not updated in place (uid %s -> %s, generation %d -> %d)",
			dep0.UID, dep1.UID, dep0.Generation, dep1.Generation)
	}
	if c := dep1.Spec.Template.Spec.Containers; len(c) != 1 || c[0].Name != "webhook" {
		t.Errorf("the upgraded Deployment's containers: %v", c)
	}
	helm("uninstall", origRelease, "--namespace", origNS, "--no-hooks")
	_ = os.Remove(crds)
}
