package charttest

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy/hub"
)

func TestLint(t *testing.T) {
	files := append([]string{""}, ciValues(t)...)
	for _, strict := range []bool{false, true} {
		for _, f := range files {
			args := []string{"lint", "."}
			if strict {
				args = append(args, "--strict")
			}
			if f != "" {
				args = append(args, "-f", f)
			}
			out, err := helm(t, args...)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			// Only the icon INFO is allowed: no warnings, no other messages.
			for _, line := range strings.Split(out, "\n") {
				line = strings.TrimSpace(line)
				if strings.HasPrefix(line, "[") && line != "[INFO] Chart.yaml: icon is recommended" {
					t.Errorf("helm %s: %s", strings.Join(args, " "), line)
				}
			}
		}
	}
}

// TestRenderings renders the defaults and every ci values file and checks what every object
// must have: the release's namespace (none hard-coded), the standard labels, and for every
// container resources, a locked-down security context, and probes on the long-running ones.
func TestRenderings(t *testing.T) {
	helmBin(t)
	for _, f := range append([]string{""}, ciValues(t)...) {
		name := "defaults"
		var args []string
		if f != "" {
			name = filepath.Base(f)
			args = []string{"-f", f}
		}
		t.Run(name, func(t *testing.T) {
			objs := render(t, args...)
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			for _, o := range objs {
				checkObject(t, o)
			}
			find(t, objs, "Deployment", "")
			find(t, objs, "MutatingWebhookConfiguration", "")
			configData(t, objs)
		})
	}
}

var clusterScoped = map[string]bool{"MutatingWebhookConfiguration": true, "ClusterRole": true, "ClusterRoleBinding": true}

func checkObject(t *testing.T, o object) {
	t.Helper()
	extra := strings.HasSuffix(o.Source, "extra-manifests.yaml") // the user's objects, as given
	switch {
	case clusterScoped[o.Kind()]:
		if o.U.GetNamespace() != "" {
			t.Errorf("%s: cluster-scoped with a namespace", o)
		}
	case extra:
	case o.U.GetNamespace() != namespace:
		t.Errorf("%s: namespace %q, want the release's %q", o, o.U.GetNamespace(), namespace)
	}
	if !extra {
		l := o.U.GetLabels()
		for k, want := range map[string]string{
			"app.kubernetes.io/instance":   release,
			"app.kubernetes.io/managed-by": "Helm",
			"app.kubernetes.io/name":       "k8s-image-swapper",
		} {
			if l[k] != want {
				t.Errorf("%s: label %s = %q, want %q", o, k, l[k], want)
			}
		}
		if l["helm.sh/chart"] == "" {
			t.Errorf("%s: no helm.sh/chart label", o)
		}
	}
	if spec := podSpec(o); spec != nil {
		checkPodSpec(t, o, spec)
	}
}

// podSpec is the pod spec of a workload, or nil.
func podSpec(o object) *corev1.PodSpec {
	switch v := o.Typed.(type) {
	case *appsv1.Deployment:
		return &v.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &v.Spec.Template.Spec
	case *batchv1.Job:
		return &v.Spec.Template.Spec
	case *corev1.Pod:
		return &v.Spec
	}
	return nil
}

// rootContainers are the only containers that may run as root: they write containerd's files
// on the node.
var rootContainers = map[string]bool{"containerd-config": true, "containerd-cleanup": true}

func checkPodSpec(t *testing.T, o object, spec *corev1.PodSpec) {
	t.Helper()
	// Exactly one source per volume (Helm merges a user's volume map into the default one).
	for _, v := range spec.Volumes {
		var src map[string]any
		b, _ := sigsyaml.Marshal(v.VolumeSource)
		if err := sigsyaml.Unmarshal(b, &src); err != nil || len(src) != 1 {
			t.Errorf("%s: volume %s has %d sources: %v", o, v.Name, len(src), src)
		}
	}
	mounts := map[string]bool{}
	for _, v := range spec.Volumes {
		mounts[v.Name] = true
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if !mounts[m.Name] {
				t.Errorf("%s container %s: mounts %s, which is not a volume", o, c.Name, m.Name)
			}
		}
	}
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range all {
		where := o.String() + " container " + c.Name
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", where)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem is not read-only", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities: want drop ALL and nothing added, got %+v", where, sc.Capabilities)
		}
		nonRoot := podNonRoot
		if sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if rootContainers[c.Name] {
			if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
				t.Errorf("%s: the node setup must run as root to write containerd's files", where)
			}
		} else if !nonRoot {
			t.Errorf("%s: not runAsNonRoot", where)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: no memory limit", where)
		}
	}
	for _, c := range spec.Containers {
		if c.Name != "webhook" && c.Name != "proxy" {
			continue
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s container %s: liveness probe is not GET /healthz", o, c.Name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s container %s: readiness probe is not GET /readyz", o, c.Name)
		}
		if env := envVar(c, "GOMEMLIMIT"); env == nil || env.ValueFrom == nil || env.ValueFrom.ResourceFieldRef == nil ||
			env.ValueFrom.ResourceFieldRef.Resource != "limits.memory" || env.ValueFrom.ResourceFieldRef.ContainerName != c.Name {
			t.Errorf("%s container %s: GOMEMLIMIT is not its own limits.memory (resourceFieldRef)", o, c.Name)
		}
	}
}

// deref shows a pointer's value in messages ("<nil>" when unset).
func deref[T any](p *T) any {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func container(t testing.TB, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func TestWebhookConfiguration(t *testing.T) {
	objs := render(t)
	mwc := as[*admissionv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", ""))
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(mwc.Webhooks))
	}
	w := mwc.Webhooks[0]
	if w.FailurePolicy == nil || *w.FailurePolicy != admissionv1.Ignore {
		t.Errorf("failurePolicy %v, want Ignore", deref(w.FailurePolicy))
	}
	if w.SideEffects == nil || *w.SideEffects != admissionv1.SideEffectClassNoneOnDryRun {
		t.Errorf("sideEffects %v, want NoneOnDryRun", deref(w.SideEffects))
	}
	if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionv1.IfNeededReinvocationPolicy {
		t.Errorf("reinvocationPolicy %v, want IfNeeded", deref(w.ReinvocationPolicy))
	}
	if w.TimeoutSeconds == nil || *w.TimeoutSeconds != 10 {
		t.Errorf("timeoutSeconds %v, want 10", deref(w.TimeoutSeconds))
	}
	if !slices.Contains(w.AdmissionReviewVersions, "v1") {
		t.Errorf("admissionReviewVersions %v lack v1", w.AdmissionReviewVersions)
	}
	ops := map[string][]admissionv1.OperationType{}
	for _, r := range w.Rules {
		for _, res := range r.Resources {
			ops[res] = append(ops[res], r.Operations...)
		}
	}
	if !slices.Equal(ops["pods"], []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}) ||
		!slices.Equal(ops["pods/ephemeralcontainers"], []admissionv1.OperationType{admissionv1.Update}) || len(ops) != 2 {
		t.Errorf("rules %v: want pods CREATE and UPDATE, and pods/ephemeralcontainers UPDATE", ops)
	}

	// Selectors: the release's namespace and opted-out pods never reach the webhook.
	nsSel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
	if err != nil {
		t.Fatal(err)
	}
	if nsSel.Matches(labels.Set{"kubernetes.io/metadata.name": namespace}) {
		t.Errorf("namespaceSelector %v sends the webhook's own namespace", nsSel)
	}
	if !nsSel.Matches(labels.Set{"kubernetes.io/metadata.name": "default"}) {
		t.Errorf("namespaceSelector %v leaves out other namespaces", nsSel)
	}
	objSel, err := metav1.LabelSelectorAsSelector(w.ObjectSelector)
	if err != nil {
		t.Fatal(err)
	}
	if objSel.Matches(labels.Set{"k8s-image-swapper.io/skip": "true"}) {
		t.Errorf("objectSelector %v sends pods labelled k8s-image-swapper.io/skip=true", objSel)
	}
	if !objSel.Matches(labels.Set{}) || !objSel.Matches(labels.Set{"k8s-image-swapper.io/skip": "false"}) {
		t.Errorf("objectSelector %v leaves out ordinary pods", objSel)
	}

	// The Service it calls selects the webhook's pods and only those.
	ref := w.ClientConfig.Service
	if ref == nil || ref.Namespace != namespace || ref.Path == nil || *ref.Path != "/webhook" || ref.Port == nil || *ref.Port != 443 {
		t.Fatalf("clientConfig.service %+v", ref)
	}
	svc := as[*corev1.Service](t, find(t, objs, "Service", ref.Name))
	if svc.Name != ref.Name {
		t.Fatalf("service %s, webhook calls %s", svc.Name, ref.Name)
	}
	dep := as[*appsv1.Deployment](t, find(t, objs, "Deployment", ""))
	ds := as[*appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "-proxy"))
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	if !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("service selector %v misses the webhook pods", sel)
	}
	if sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("service selector %v also selects the proxy pods", sel)
	}
	depSel, _ := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if depSel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("the webhook Deployment's selector %v also selects the proxy pods", depSel)
	}
	if svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.String() != "https" {
		t.Errorf("service port %+v", svc.Spec.Ports[0])
	}

	// The generated certificate: the caBundle is the Secret's CA, the serving certificate
	// chains to it for the Service's DNS name, and its key matches.
	secret := as[*corev1.Secret](t, find(t, objs, "Secret", "-tls"))
	if secret.Type != corev1.SecretTypeTLS {
		t.Errorf("secret type %s", secret.Type)
	}
	if string(w.ClientConfig.CABundle) != string(secret.Data["ca.crt"]) {
		t.Errorf("caBundle is not the Secret's ca.crt")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(w.ClientConfig.CABundle) {
		t.Fatalf("caBundle holds no PEM certificate")
	}
	if _, err := tls.X509KeyPair(secret.Data["tls.crt"], secret.Data["tls.key"]); err != nil {
		t.Errorf("tls.crt and tls.key: %v", err)
	}
	block, _ := pem.Decode(secret.Data["tls.crt"])
	if block == nil {
		t.Fatal("tls.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	dnsName := svc.Name + "." + namespace + ".svc"
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: dnsName, Roots: pool}); err != nil {
		t.Errorf("serving certificate does not verify for %s: %v", dnsName, err)
	}
	if got := secret.Annotations["k8s-image-swapper.io/issued-for"]; got != dnsName {
		t.Errorf("issued-for annotation %q, want %q (lookup reuses the Secret only when it matches)", got, dnsName)
	}

	// The Deployment serves with that Secret.
	var tlsSecret string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			tlsSecret = v.Secret.SecretName
		}
	}
	if tlsSecret != secret.Name {
		t.Errorf("webhook mounts secret %q, want %q", tlsSecret, secret.Name)
	}
	c := container(t, dep.Spec.Template.Spec, "webhook")
	for _, want := range []string{"--tls-cert-file=/etc/k8s-image-swapper/tls/tls.crt", "--tls-key-file=/etc/k8s-image-swapper/tls/tls.key",
		"--config=/etc/k8s-image-swapper/config.yml", "--listen-address=:8443"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("webhook args %v lack %s", c.Args, want)
		}
	}
	if c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("readiness probe scheme %s, want HTTPS", c.ReadinessProbe.HTTPGet.Scheme)
	}
	pdb := as[*policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", "-webhook"))
	pdbSel, _ := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if !pdbSel.Matches(labels.Set(dep.Spec.Template.Labels)) || pdbSel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("PodDisruptionBudget selector %v must select the webhook pods only", pdbSel)
	}
}

// TestCertificateKeptAcrossUpgrades: without a cluster `helm template` cannot look anything up,
// so this checks the template does: it looks up the Secret it renders and reuses its data.
// e2e/chart_test.go installs and upgrades for real.
func TestCertificateKeptAcrossUpgrades(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(t), "templates", "webhook", "mutatingwebhookconfiguration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, want := range []string{
		`lookup "v1" "Secret" $ns $secretName`,
		`$crt = index $data "tls.crt"`,
		`$key = index $data "tls.key"`,
		`$ca = index $data "ca.crt"`,
		`$caBundle = $ca`,
		`genCA`,
	} {
		if !strings.Contains(src, want) {
			t.Errorf("the certificate template lacks %q: it must reuse the existing Secret on upgrade", want)
		}
	}
	// And without a previous release, each rendering makes a fresh pair.
	a := as[*corev1.Secret](t, find(t, renderFresh(t), "Secret", "-tls"))
	c := as[*corev1.Secret](t, find(t, renderFresh(t), "Secret", "-tls"))
	if string(a.Data["ca.crt"]) == string(c.Data["ca.crt"]) {
		t.Errorf("two installs rendered the same CA")
	}
}

func TestCertManager(t *testing.T) {
	objs := render(t, "-f", filepath.Join(chartDir(t), "ci", "certmanager-values.yaml"))
	for _, o := range findAll(objs, "Secret") {
		t.Errorf("with cert-manager the chart renders %s", o)
	}
	cert := find(t, objs, "Certificate", "-cert")
	secretName, _, _ := unstructured.NestedString(cert.U.Object, "spec", "secretName")
	dns, _, _ := unstructured.NestedStringSlice(cert.U.Object, "spec", "dnsNames")
	svc := find(t, objs, "Service", "k8s-image-swapper")
	if want := svc.Name() + "." + namespace + ".svc"; !slices.Contains(dns, want) {
		t.Errorf("certificate dnsNames %v lack %s", dns, want)
	}
	dep := as[*appsv1.Deployment](t, find(t, objs, "Deployment", ""))
	var mounted string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			mounted = v.Secret.SecretName
		}
	}
	if mounted == "" || mounted != secretName {
		t.Errorf("webhook mounts %q, the Certificate writes %q", mounted, secretName)
	}
	mwc := as[*admissionv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", ""))
	if got, want := mwc.Annotations["cert-manager.io/inject-ca-from"], namespace+"/"+cert.Name(); got != want {
		t.Errorf("inject-ca-from %q, want %q", got, want)
	}
	if len(mwc.Webhooks[0].ClientConfig.CABundle) != 0 {
		t.Errorf("with cert-manager the caBundle is left to its CA injector")
	}
	issuer, _, _ := unstructured.NestedString(cert.U.Object, "spec", "issuerRef", "name")
	find(t, objs, "Issuer", strings.TrimPrefix(issuer, release))
	if mwc.Webhooks[0].NamespaceSelector.MatchLabels["k8s-image-swapper.io/enabled"] != "true" {
		t.Errorf("the user's namespaceSelector was dropped: %+v", mwc.Webhooks[0].NamespaceSelector)
	}

	objs = render(t, "-f", filepath.Join(chartDir(t), "ci", "certmanager-clusterissuer-values.yaml"))
	cert = find(t, objs, "Certificate", "-cert")
	kind, _, _ := unstructured.NestedString(cert.U.Object, "spec", "issuerRef", "kind")
	name, _, _ := unstructured.NestedString(cert.U.Object, "spec", "issuerRef", "name")
	if kind != "ClusterIssuer" || name != "internal-ca" {
		t.Errorf("issuerRef %s/%s, want ClusterIssuer/internal-ca", kind, name)
	}
	if n := len(findAll(objs, "Issuer")); n != 0 {
		t.Errorf("with an issuer given the chart still renders %d Issuers", n)
	}
}

// TestRBAC: no Kubernetes API rights without secretReader; with it, read-only secrets and
// service accounts; nothing anywhere beyond get, list and watch.
func TestRBAC(t *testing.T) {
	def := render(t)
	if n := len(findAll(def, "ClusterRole")); n != 0 {
		t.Errorf("defaults render %d ClusterRoles; the webhook needs none without secretReader", n)
	}
	dep := as[*appsv1.Deployment](t, find(t, def, "Deployment", ""))
	if a := dep.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Errorf("without secretReader the webhook's token must not be mounted")
	}
	if !slices.Contains(container(t, dep.Spec.Template.Spec, "webhook").Args, "--secret-reader=false") {
		t.Errorf("the webhook must be told not to read secrets")
	}

	tf := render(t, "-f", filepath.Join(chartDir(t), "ci", "terraform-aws-values.yaml"))
	role := as[*rbacv1.ClusterRole](t, find(t, tf, "ClusterRole", ""))
	got := map[string][]string{}
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 {
			t.Errorf("rule %+v restricted by name without secretNames", r)
		}
		for _, res := range r.Resources {
			got[res] = r.Verbs
		}
	}
	rw := []string{"get", "list", "watch"}
	if len(got) != 2 || !slices.Equal(got["secrets"], rw) || !slices.Equal(got["serviceaccounts"], rw) {
		t.Errorf("ClusterRole rules %v, want secrets and serviceaccounts get/list/watch only", got)
	}
	binding := as[*rbacv1.ClusterRoleBinding](t, find(t, tf, "ClusterRoleBinding", ""))
	sa := as[*corev1.ServiceAccount](t, find(t, tf, "ServiceAccount", "k8s-image-swapper"))
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != namespace {
		t.Errorf("binding %+v does not bind %s to %s", binding, role.Name, sa.Name)
	}
	const irsa = "eks.amazonaws.com/role-arn"
	if sa.Annotations[irsa] == "" {
		t.Errorf("the IRSA annotation is missing on %s", sa.Name)
	}
	proxySA := as[*corev1.ServiceAccount](t, find(t, tf, "ServiceAccount", "-proxy"))
	if proxySA.Annotations[irsa] != sa.Annotations[irsa] {
		t.Errorf("the proxy's service account does not get the IRSA annotation (it writes to the target too)")
	}
	if proxySA.AutomountServiceAccountToken == nil || *proxySA.AutomountServiceAccountToken {
		t.Errorf("the proxy's service account must not mount a token")
	}
	dep = as[*appsv1.Deployment](t, find(t, tf, "Deployment", ""))
	if dep.Spec.Template.Spec.ServiceAccountName != sa.Name {
		t.Errorf("webhook runs as %s, not %s", dep.Spec.Template.Spec.ServiceAccountName, sa.Name)
	}
	if !slices.Contains(container(t, dep.Spec.Template.Spec, "webhook").Args, "--secret-reader=true") {
		t.Errorf("secretReader.enabled does not reach the webhook")
	}

	full := render(t, "-f", filepath.Join(chartDir(t), "ci", "full-values.yaml"))
	role = as[*rbacv1.ClusterRole](t, find(t, full, "ClusterRole", ""))
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "secrets") && !slices.Equal(r.ResourceNames, []string{"regcred"}) {
			t.Errorf("secretNames not applied: %+v", r)
		}
	}

	// Nothing in any rendering grants more than reading.
	for _, f := range append([]string{""}, ciValues(t)...) {
		var args []string
		if f != "" {
			args = []string{"-f", f}
		}
		for _, o := range render(t, args...) {
			var rules []rbacv1.PolicyRule
			switch v := o.Typed.(type) {
			case *rbacv1.ClusterRole:
				rules = v.Rules
			case *rbacv1.Role:
				rules = v.Rules
			}
			for _, r := range rules {
				// Asking who holds a token (the hub's callers) writes nothing.
				if slices.Equal(r.APIGroups, []string{"authentication.k8s.io"}) && slices.Equal(r.Resources, []string{"tokenreviews"}) &&
					slices.Equal(r.Verbs, []string{"create"}) {
					continue
				}
				for _, v := range r.Verbs {
					if !slices.Contains(rw, v) {
						t.Errorf("%s: verb %q in %+v", o, v, r)
					}
				}
				if slices.Contains(r.Resources, "*") || slices.Contains(r.APIGroups, "*") {
					t.Errorf("%s: wildcard in %+v", o, r)
				}
			}
		}
	}
}

func checksum(t testing.TB, objs []object, kind, suffix string) string {
	t.Helper()
	o := find(t, objs, kind, suffix)
	var ann map[string]string
	switch v := o.Typed.(type) {
	case *appsv1.Deployment:
		ann = v.Spec.Template.Annotations
	case *appsv1.DaemonSet:
		ann = v.Spec.Template.Annotations
	}
	if ann["checksum/config"] == "" {
		t.Fatalf("%s: no checksum/config annotation on its pods", o)
	}
	return ann["checksum/config"]
}

func configData(t testing.TB, objs []object) string {
	t.Helper()
	var found []string
	for _, o := range findAll(objs, "ConfigMap") {
		if data, ok := as[*corev1.ConfigMap](t, o).Data["config.yml"]; ok {
			found = append(found, data)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one ConfigMap with config.yml, found %d", len(found))
	}
	return found[0]
}

// TestConfigChecksum: pods restart when their config changes: the webhook on any change, the
// proxies only on changes of what they read.
func TestConfigChecksum(t *testing.T) {
	base := render(t)
	sum := sha256.Sum256([]byte(strings.TrimSuffix(configData(t, base), "\n")))
	if got := checksum(t, base, "Deployment", ""); got != hex.EncodeToString(sum[:]) {
		t.Errorf("webhook checksum %s is not the sha256 of the rendered config", got)
	}
	again := renderFresh(t)
	if checksum(t, base, "Deployment", "") != checksum(t, again, "Deployment", "") ||
		checksum(t, base, "DaemonSet", "-proxy") != checksum(t, again, "DaemonSet", "-proxy") {
		t.Errorf("checksums differ between two renderings of the same values")
	}

	logLevel := render(t, "--set", "config.logLevel=debug")
	if checksum(t, logLevel, "Deployment", "") == checksum(t, base, "Deployment", "") {
		t.Errorf("webhook checksum did not change with config.logLevel")
	}
	if checksum(t, logLevel, "DaemonSet", "-proxy") == checksum(t, base, "DaemonSet", "-proxy") {
		t.Errorf("proxy checksum did not change with config.logLevel")
	}
	target := render(t, "--set", "config.target.generic.registry=registry.example.com")
	if checksum(t, target, "DaemonSet", "-proxy") == checksum(t, base, "DaemonSet", "-proxy") {
		t.Errorf("proxy checksum did not change with config.target")
	}

	filters := render(t, "--set", "config.source.filters[0].jmespath=obj.metadata.namespace == 'x'")
	if checksum(t, filters, "Deployment", "") == checksum(t, base, "Deployment", "") {
		t.Errorf("webhook checksum did not change with config.source.filters")
	}
	if checksum(t, filters, "DaemonSet", "-proxy") != checksum(t, base, "DaemonSet", "-proxy") {
		t.Errorf("proxy checksum changed with config.source.filters, which only the webhook reads")
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// TestRenderedConfigParses reads every rendered config file with the binary's own parser, strictly
// (as `config validate` does): what the chart mounts is what the webhook and proxy accept, with
// no warning.
func TestRenderedConfigParses(t *testing.T) {
	helmBin(t)
	for _, f := range append([]string{""}, ciValues(t)...) {
		var args []string
		name := "defaults"
		if f != "" {
			args, name = []string{"-f", f}, filepath.Base(f)
		}
		t.Run(name, func(t *testing.T) {
			data := configData(t, render(t, args...))
			for _, m := range envRef.FindAllStringSubmatch(data, -1) {
				t.Setenv(m[1], "from-the-environment")
			}
			c, err := config.Parse([]byte(data), config.Options{Strict: true})
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if len(c.Warnings) > 0 {
				t.Errorf("warnings: %v\n%s", c.Warnings, data)
			}
			switch name {
			case "terraform-aws-values.yaml":
				if c.Target.Type != "aws" || c.Target.AWS.AccountID != "123456789012" || len(c.Source.Filters) != 2 {
					t.Errorf("terraform values read as %+v", c)
				}
			case "gcp-values.yaml":
				if c.Target.Type != "gcp" || c.Target.GCP.RepositoryID != "main" {
					t.Errorf("gcp values read as %+v", c)
				}
			case "defaults":
				if c.DryRun || c.Target.Type != "local" {
					t.Errorf("defaults read as %+v", c)
				}
			}
		})
	}
	// Leftovers of merged values files: with target.type set, other kinds are dropped.
	data := configData(t, render(t, "--set", "config.target.type=gcp,config.target.gcp.location=eu,config.target.gcp.projectId=p,config.target.gcp.repositoryId=r,config.target.aws.accountId=1,config.target.aws.region=x"))
	if strings.Contains(data, "aws") {
		t.Errorf("target.aws kept although target.type is gcp:\n%s", data)
	}
}

// With the hub, only the webhook's ServiceAccount may ask it to copy: the hub
// is told that caller and may review tokens; the webhook carries a token for
// the hub's audience, projected and rotated by the kubelet.
func TestHubCallers(t *testing.T) {
	objs := render(t, "--set", "hub.enabled=true")
	sa := as[*corev1.ServiceAccount](t, find(t, objs, "ServiceAccount", "k8s-image-swapper"))
	hubPod := as[*appsv1.StatefulSet](t, find(t, objs, "StatefulSet", "-hub")).Spec.Template.Spec
	want := "--api-callers=system:serviceaccount:" + namespace + ":" + sa.Name
	if args := container(t, hubPod, "hub").Args; !slices.Contains(args, want) {
		t.Errorf("hub args %v lack %s", args, want)
	}
	if a := hubPod.AutomountServiceAccountToken; a == nil || !*a || hubPod.ServiceAccountName != sa.Name {
		t.Errorf("the hub needs its API token to review tokens (automount %v, account %q)", deref(a), hubPod.ServiceAccountName)
	}
	role := as[*rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "-hub"))
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"tokenreviews"}) || !slices.Equal(role.Rules[0].Verbs, []string{"create"}) {
		t.Errorf("hub ClusterRole rules %+v, want tokenreviews create only", role.Rules)
	}
	binding := as[*rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", "-hub"))
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != sa.Name {
		t.Errorf("binding %+v does not bind %s to %s", binding, role.Name, sa.Name)
	}

	spec := as[*appsv1.Deployment](t, find(t, objs, "Deployment", "")).Spec.Template.Spec
	web := container(t, spec, "webhook")
	var file string
	for _, a := range web.Args {
		if f, ok := strings.CutPrefix(a, "--hub-token-file="); ok {
			file = f
		}
	}
	mounted := false
	for _, m := range web.VolumeMounts {
		if filepath.Dir(file) != m.MountPath {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.Projected == nil || len(v.Projected.Sources) != 1 {
				continue
			}
			tok := v.Projected.Sources[0].ServiceAccountToken
			mounted = tok != nil && tok.Audience == hub.Audience && tok.Path == filepath.Base(file) &&
				tok.ExpirationSeconds != nil && *tok.ExpirationSeconds <= 3600
		}
	}
	if file == "" || !mounted {
		t.Errorf("the webhook's --hub-token-file %q is not a projected token for %q (args %v, volumes %+v)", file, hub.Audience, web.Args, spec.Volumes)
	}
	def := render(t)
	for _, o := range def {
		if strings.HasSuffix(o.Name(), "-hub") {
			t.Errorf("without the hub: %s", o)
		}
	}
	if args := container(t, *podSpec(find(t, def, "Deployment", "")), "webhook").Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--hub-token-file") }) {
		t.Errorf("without the hub the webhook is given a hub token: %v", args)
	}
}

func TestProxyDaemonSet(t *testing.T) {
	objs := render(t)
	ds := as[*appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "-proxy"))
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Errorf("the proxy must be on the node's network by default")
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	tolerateAll := false
	for _, tol := range spec.Tolerations {
		if tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == "" {
			tolerateAll = true
		}
	}
	if !tolerateAll {
		t.Errorf("tolerations %+v do not tolerate every taint", spec.Tolerations)
	}
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru == nil || ru.MaxSurge == nil || ru.MaxSurge.IntValue() != 0 {
		t.Errorf("maxSurge must be 0: two proxies cannot share the node's port")
	}
	if a := spec.AutomountServiceAccountToken; a == nil || *a {
		t.Errorf("the proxy needs no Kubernetes API token")
	}

	initC := container(t, spec, "containerd-config")
	if initC.Args[0] != "containerd-config" {
		t.Errorf("init container runs %v", initC.Args)
	}
	for _, want := range []string{
		"--certs-dir=/host/etc/containerd/certs.d", "--containerd-certs-dir=/etc/containerd/certs.d",
		"--proxy-url=http://127.0.0.1:7439", "--containerd-config=/host/etc/containerd/config.toml",
		"--config=/etc/k8s-image-swapper/config.yml",
	} {
		if !slices.Contains(initC.Args, want) {
			t.Errorf("init args %v lack %s", initC.Args, want)
		}
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	if len(hostPaths) != 2 || hostPaths["containerd-certs"] != "/etc/containerd/certs.d" || hostPaths["containerd-config"] != "/etc/containerd" {
		t.Errorf("host paths %v: want only containerd's certs.d (written) and its config folder (read)", hostPaths)
	}
	for _, m := range initC.VolumeMounts {
		switch m.Name {
		case "containerd-certs":
			if m.MountPath != "/host/etc/containerd/certs.d" || m.ReadOnly {
				t.Errorf("certs.d mount %+v", m)
			}
		case "containerd-config":
			if !m.ReadOnly {
				t.Errorf("containerd's config folder must be mounted read-only: %+v", m)
			}
		}
	}
	proxy := container(t, spec, "proxy")
	if proxy.Args[0] != "proxy" || !slices.Contains(proxy.Args, "--listen-address=127.0.0.1:7439") {
		t.Errorf("proxy args %v: want loopback 127.0.0.1:7439", proxy.Args)
	}
	for _, m := range proxy.VolumeMounts {
		if _, ok := hostPaths[m.Name]; ok {
			t.Errorf("the long-running proxy mounts the node's %s", m.Name)
		}
	}
	if proxy.LivenessProbe.HTTPGet.Host != "127.0.0.1" || proxy.ReadinessProbe.HTTPGet.Host != "127.0.0.1" {
		t.Errorf("probes must ask 127.0.0.1: the proxy listens on the node's loopback only")
	}

	// hostPort mode: containerd reaches the proxy on the node's IP.
	full := render(t, "-f", filepath.Join(chartDir(t), "ci", "full-values.yaml"))
	ds = as[*appsv1.DaemonSet](t, find(t, full, "DaemonSet", "-proxy"))
	spec = ds.Spec.Template.Spec
	if spec.HostNetwork {
		t.Errorf("proxy.hostNetwork=false still on the host's network")
	}
	proxy = container(t, spec, "proxy")
	if len(proxy.Ports) == 0 || proxy.Ports[0].HostPort != 7439 || !slices.Contains(proxy.Args, "--listen-address=:7439") {
		t.Errorf("hostPort mode: ports %+v args %v", proxy.Ports, proxy.Args)
	}
	initC = container(t, spec, "containerd-config")
	if !slices.Contains(initC.Args, "--proxy-url=http://$(NODE_IP):7439") {
		t.Errorf("hostPort mode: init args %v", initC.Args)
	}
	if e := envVar(initC, "NODE_IP"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "status.hostIP" {
		t.Errorf("NODE_IP is not the node's IP: %+v", e)
	}
	for _, a := range initC.Args {
		if strings.HasPrefix(a, "--containerd-config") {
			t.Errorf("proxy.containerd.configFile empty still checks: %s", a)
		}
	}
	if !slices.Contains(initC.Args, "--plain-http=registry.internal:5000") {
		t.Errorf("plainHTTP not passed: %v", initC.Args)
	}

	off := render(t, "--set", "proxy.enabled=false")
	for _, o := range off {
		if c := o.U.GetLabels()["app.kubernetes.io/component"]; c == "proxy" || c == "cleanup" {
			t.Errorf("proxy.enabled=false still renders %s", o)
		}
	}
}

// TestCleanupHook: uninstalling runs `containerd-config --cleanup` on every node the proxy ran
// on, through a post-delete DaemonSet that a Job waits for.
func TestCleanupHook(t *testing.T) {
	objs := render(t)
	proxyDS := as[*appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "-proxy"))
	hookDS := find(t, objs, "DaemonSet", "-proxy-cleanup")
	job := find(t, objs, "Job", "-proxy-cleanup-wait")
	weights := map[string]string{}
	for _, o := range objs {
		if o.Hook() == "" || o.Hook() == "test" {
			continue
		}
		if o.Hook() != "post-delete" {
			t.Errorf("%s: hook %q", o, o.Hook())
		}
		if p := o.U.GetAnnotations()["helm.sh/hook-delete-policy"]; !strings.Contains(p, "hook-succeeded") || !strings.Contains(p, "before-hook-creation") {
			t.Errorf("%s: delete policy %q", o, p)
		}
		weights[o.Kind()] = o.U.GetAnnotations()["helm.sh/hook-weight"]
	}
	if !(weights["ServiceAccount"] == "-10" && weights["Role"] == "-10" && weights["RoleBinding"] == "-10" &&
		weights["DaemonSet"] == "-5" && weights["Job"] == "0") {
		t.Errorf("hook weights %v: RBAC, then the DaemonSet, then the Job that waits", weights)
	}
	ds := as[*appsv1.DaemonSet](t, hookDS)
	init := container(t, ds.Spec.Template.Spec, "containerd-cleanup")
	proxyInit := container(t, proxyDS.Spec.Template.Spec, "containerd-config")
	if !slices.Contains(init.Args, "--cleanup") || init.Args[0] != "containerd-config" {
		t.Errorf("cleanup runs %v", init.Args)
	}
	for _, a := range proxyInit.Args {
		if strings.HasPrefix(a, "--certs-dir=") && !slices.Contains(init.Args, a) {
			t.Errorf("cleanup %v does not clean the folder the setup wrote (%s)", init.Args, a)
		}
	}
	for _, pair := range [][2]any{
		{ds.Spec.Template.Spec.Tolerations, proxyDS.Spec.Template.Spec.Tolerations},
		{ds.Spec.Template.Spec.NodeSelector, proxyDS.Spec.Template.Spec.NodeSelector},
	} {
		if !equalYAML(t, pair[0], pair[1]) {
			t.Errorf("the cleanup DaemonSet does not go to the proxy's nodes: %v vs %v", pair[0], pair[1])
		}
	}
	j := as[*batchv1.Job](t, job)
	wait := j.Spec.Template.Spec.Containers[0]
	if len(wait.Args) < 3 || !slices.Equal(wait.Args[:3], []string{"wait-daemonset", ds.Name, "--namespace=" + namespace}) {
		t.Errorf("the Job runs %v, not a wait for %s", wait.Args, ds.Name)
	}
	if done := ds.Spec.Template.Spec.Containers[0]; len(done.Args) != 1 || done.Args[0] != "sleep" {
		t.Errorf("the cleanup pods' container runs %v, not sleep", done.Args)
	}
	if a := j.Spec.Template.Spec.AutomountServiceAccountToken; a != nil && !*a {
		t.Error("the waiting Job has no service account token to read the DaemonSet with")
	}
	rb := as[*rbacv1.RoleBinding](t, find(t, objs, "RoleBinding", "-proxy-cleanup"))
	if rb.Subjects[0].Name != j.Spec.Template.Spec.ServiceAccountName {
		t.Errorf("the Job's service account %s is not bound", j.Spec.Template.Spec.ServiceAccountName)
	}

	for _, o := range render(t, "--set", "proxy.cleanup.enabled=false") {
		if o.Hook() == "post-delete" {
			t.Errorf("proxy.cleanup.enabled=false still renders %s", o)
		}
	}
}

func equalYAML(t testing.TB, a, b any) bool {
	t.Helper()
	return strings.EqualFold(toYAML(t, a), toYAML(t, b))
}

func TestAutoscalingAndMonitoring(t *testing.T) {
	objs := render(t, "-f", filepath.Join(chartDir(t), "ci", "full-values.yaml"))
	dep := as[*appsv1.Deployment](t, find(t, objs, "Deployment", ""))
	if dep.Spec.Replicas != nil {
		t.Errorf("with autoscaling the Deployment must not set replicas")
	}
	hpa := as[*autoscalingv2.HorizontalPodAutoscaler](t, find(t, objs, "HorizontalPodAutoscaler", ""))
	if hpa.Spec.ScaleTargetRef.Name != dep.Name || len(hpa.Spec.Metrics) != 2 {
		t.Errorf("HPA %+v", hpa.Spec)
	}
	pdb := as[*policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", "-webhook"))
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.String() != "50%" || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB %+v: minAvailable 50%% wins over maxUnavailable", pdb.Spec)
	}
	sm := find(t, objs, "ServiceMonitor", "-webhook")
	port, _, _ := unstructured.NestedString(sm.U.Object, "spec", "endpoints", "0", "port")
	eps, _, _ := unstructured.NestedSlice(sm.U.Object, "spec", "endpoints")
	if len(eps) != 1 || eps[0].(map[string]any)["scheme"] != "https" || eps[0].(map[string]any)["path"] != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %v (%s)", eps, port)
	}
	pm := find(t, objs, "PodMonitor", "-proxy")
	peps, _, _ := unstructured.NestedSlice(pm.U.Object, "spec", "podMetricsEndpoints")
	if len(peps) != 1 || peps[0].(map[string]any)["port"] != "proxy" {
		t.Errorf("PodMonitor endpoints %v: the proxy's port in hostPort mode", peps)
	}
	if sm.U.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("serviceMonitor.labels not applied")
	}
	// With the proxy on the node's loopback, a PodMonitor needs the metrics listener.
	if _, err := helm(t, templateArgs("--set", "podMonitor.enabled=true")...); err == nil || !strings.Contains(err.Error(), "proxy.metrics.enabled") {
		t.Errorf("podMonitor on a loopback-only proxy without proxy.metrics: %v", err)
	}
	mwc := as[*admissionv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", ""))
	nsSel, _ := metav1.LabelSelectorAsSelector(mwc.Webhooks[0].NamespaceSelector)
	for _, ns := range []string{namespace, "kube-system", "monitoring"} {
		if nsSel.Matches(labels.Set{"kubernetes.io/metadata.name": ns}) {
			t.Errorf("namespace %s sent to the webhook", ns)
		}
	}
	if nsSel.Matches(labels.Set{"kubernetes.io/metadata.name": "app", "swapper": "off"}) {
		t.Errorf("the user's namespaceSelector expression was dropped")
	}
	if mwc.Webhooks[0].ObjectSelector.MatchLabels["app.kubernetes.io/managed-by"] != "Helm" {
		t.Errorf("the user's objectSelector was dropped")
	}
}

func TestDevWebhookURL(t *testing.T) {
	objs := render(t, "-f", filepath.Join(chartDir(t), "ci", "dev-values.yaml"))
	mwc := as[*admissionv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", ""))
	cc := mwc.Webhooks[0].ClientConfig
	if cc.URL == nil || *cc.URL != "https://example.ngrok.io" || cc.Service != nil {
		t.Errorf("dev.enabled: clientConfig %+v", cc)
	}
	if len(findAll(objs, "DaemonSet")) != 0 {
		t.Errorf("proxy.enabled=false still renders a DaemonSet")
	}
}

func toYAML(t testing.TB, v any) string {
	t.Helper()
	b, err := sigsyaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
