//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook/webhooktest"
)

// TestWebhookOnKubeAPIServer runs the built webhook behind a real
// kube-apiserver, with real registries as sources and target, and checks
// what pods end up with.
func TestWebhookOnKubeAPIServer(t *testing.T) {
	kube := startKube(t)
	bin := swapperbin.Path(t)
	src := registryproc.Start(t, registryproc.Options{})
	const user, pass = "puller", "s3cret"
	private := registryproc.Start(t, registryproc.Options{Htpasswd: registryproc.Htpasswd(t, user, pass)})
	dst := registryproc.Start(t, registryproc.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Source images; "present" ones are also in the target already.
	img := func(repo string) string { return src.Addr + "/team/" + repo + ":v1" }
	toTarget := func(ref string) string { return dst.Addr + "/" + strings.Replace(ref, ":", "_", 1) }
	present, missing, filtered := img("present"), img("missing"), img("filtered")
	debugPresent, debugMissing := img("debug-present"), img("debug-missing")
	for _, ref := range []string{present, missing, filtered, debugPresent, debugMissing} {
		images.Push(t, ref, images.Image(t, 4096, 2, "linux/amd64"))
	}
	for _, ref := range []string{present, filtered, debugPresent} {
		images.Push(t, toTarget(ref), remoteImage(t, ref, nil))
	}
	privateImg, privateNoSecret := private.Addr+"/team/private:v1", private.Addr+"/team/nosecret:v1"
	for _, ref := range []string{privateImg, privateNoSecret} {
		pushAuth(t, ref, images.Image(t, 4096, 1, "linux/amd64"), &authn.Basic{Username: user, Password: pass})
	}

	// The webhook, as the chart runs it: HTTPS with its own CA, secret reader on.
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
  filters:
    - jmespath: "obj.metadata.namespace == 'filtered'"
target:
  type: generic
  generic: {registry: "%s", insecure: true}
`, src.Addr, private.Addr, dst.Addr))

	c := kube.Client
	for _, ns := range []string{"apps", "filtered"} {
		createNamespace(ctx, t, c, ns)
	}
	registerWebhook(ctx, t, c, wh.base+"/webhook", ca.CertPEM)
	waitWebhookActive(ctx, t, c, present, toTarget(present))

	t.Run("image in target is swapped", func(t *testing.T) {
		p := createPod(ctx, t, c, "apps", "in-target", present)
		if got := p.Spec.Containers[0].Image; got != toTarget(present) {
			t.Fatalf("image %q, want %q", got, toTarget(present))
		}
	})

	t.Run("exists: missing image kept, copied, next pod swapped", func(t *testing.T) {
		p := createPod(ctx, t, c, "apps", "missing-1", missing)
		if got := p.Spec.Containers[0].Image; got != missing {
			t.Fatalf("first pod image %q, want the original %q", got, missing)
		}
		want := imageDigest(t, missing, nil)
		waitInRegistry(ctx, t, toTarget(missing), want)
		p = createPod(ctx, t, c, "apps", "missing-2", missing)
		if got := p.Spec.Containers[0].Image; got != toTarget(missing) {
			t.Fatalf("second pod image %q, want %q", got, toTarget(missing))
		}
	})

	t.Run("pod update: a changed image is swapped as on create", func(t *testing.T) {
		// Created with the original, as when the webhook was down.
		p := podSpec("update-me", missing)
		p.Labels = map[string]string{"k8s-image-swapper.io/skip": "true"}
		p, err := c.CoreV1().Pods("apps").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		delete(p.Labels, "k8s-image-swapper.io/skip")
		if p, err = c.CoreV1().Pods("apps").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.Containers[0].Image; got != missing {
			t.Fatalf("an update that left the image alone rewrote it to %q (the container would restart)", got)
		}
		p.Spec.Containers[0].Image = present
		if p, err = c.CoreV1().Pods("apps").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.Containers[0].Image; got != toTarget(present) {
			t.Fatalf("updated image %q, want %q", got, toTarget(present))
		}
	})

	t.Run("filtered namespace untouched", func(t *testing.T) {
		p := createPod(ctx, t, c, "filtered", "filtered", filtered)
		if got := p.Spec.Containers[0].Image; got != filtered {
			t.Fatalf("image %q, want the original %q", got, filtered)
		}
	})

	t.Run("ephemeral containers through pods/ephemeralcontainers", func(t *testing.T) {
		createPod(ctx, t, c, "apps", "debug-me", present)
		// client-go: an image the target has is swapped.
		p, err := c.CoreV1().Pods("apps").Get(ctx, "debug-me", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: debugPresent,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}})
		p, err = c.CoreV1().Pods("apps").UpdateEphemeralContainers(ctx, "debug-me", p, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.EphemeralContainers[0].Image; got != toTarget(debugPresent) {
			t.Fatalf("ephemeral image %q, want %q", got, toTarget(debugPresent))
		}
		// kubectl debug: a missing image is kept, mirrored, and the first
		// ephemeral container is left as it was.
		kubectl(t, kube, "debug", "-n", "apps", "pod/debug-me", "--image="+debugMissing, "--container=debugger-2")
		p, err = c.CoreV1().Pods("apps").Get(ctx, "debug-me", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(p.Spec.EphemeralContainers); n != 2 {
			t.Fatalf("%d ephemeral containers, want 2", n)
		}
		if got := p.Spec.EphemeralContainers[0].Image; got != toTarget(debugPresent) {
			t.Errorf("first ephemeral image changed to %q", got)
		}
		if got := p.Spec.EphemeralContainers[1].Image; got != debugMissing {
			t.Errorf("kubectl debug image %q, want the original %q", got, debugMissing)
		}
		waitInRegistry(ctx, t, toTarget(debugMissing), imageDigest(t, debugMissing, nil))
	})

	t.Run("pull secrets are used for copies", func(t *testing.T) {
		auths := map[string]any{"auths": map[string]any{private.Addr: map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}}
		data, _ := json.Marshal(auths)
		_, err := c.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: data}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Without a secret the copy fails: the registry wants a login.
		createPod(ctx, t, c, "apps", "no-secret", privateNoSecret)
		// With it the copy succeeds. The webhook's informer sees a new
		// secret a moment after it is created, so pods are created until
		// a copy has used it; each keeps the original image meanwhile.
		want := imageDigest(t, privateImg, &authn.Basic{Username: user, Password: pass})
		for i := 0; ; i++ {
			p := podSpec(fmt.Sprintf("with-secret-%d", i), privateImg)
			p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
			got, err := c.CoreV1().Pods("apps").Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if img := got.Spec.Containers[0].Image; img == toTarget(privateImg) {
				break
			} else if img != privateImg {
				t.Fatalf("pod image %q, want the original or the mirror", img)
			}
			wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
			ok := inRegistry(wctx, t, toTarget(privateImg), want)
			wcancel()
			if ok {
				t.Logf("copied with the pod's pull secret after %d pod(s)", i+1)
			}
		}
		wh.waitLog(ctx, t, `"message":"copy failed"`, "nosecret")
		if _, err := remote.Head(mustRef(t, toTarget(privateNoSecret))); err == nil {
			t.Fatal("an image was copied with no credentials")
		}
	})

	t.Run("metrics count decisions", func(t *testing.T) {
		m := wh.get(t, "/metrics")
		for _, want := range []string{`k8s_image_swapper_image_decisions_total{decision="swapped"}`,
			`k8s_image_swapper_image_decisions_total{decision="kept_missing"}`,
			`k8s_image_swapper_image_decisions_total{decision="filtered"}`,
			`k8s_image_swapper_admission_requests_total{result="patched"}`,
			`k8s_image_swapper_copies_total{result="copied"}`} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("webhook down, failurePolicy Ignore: pods still admitted", func(t *testing.T) {
		wh.stop(t)
		p := createPod(ctx, t, c, "apps", "webhook-down", present)
		if got := p.Spec.Containers[0].Image; got != present {
			t.Fatalf("image %q, want the original %q", got, present)
		}
		// The API server did call and fail open, rather than skip the webhook.
		if log := kube.APIServerLog(); !strings.Contains(log, "failing open") || !strings.Contains(log, "pods.k8s-image-swapper.io") {
			t.Fatal("kube-apiserver did not log a failed call to the webhook")
		}
	})
}

type webhookProc struct {
	cmd    *exec.Cmd
	base   string
	client *http.Client
	syncLog
	done chan struct{}
}

func (w *webhookProc) logText() string {
	return w.String()
}

// startConfiguredWebhook runs the webhook as the chart does (HTTPS with a
// CA of the test's own, a serving certificate for 127.0.0.1) with config as
// its config file and kubeconfig, on a free port, plus extra flags.
func startConfiguredWebhook(t *testing.T, bin, kubeconfig, config string, extra ...string) (*webhookProc, *webhooktest.CA) {
	t.Helper()
	dir := t.TempDir()
	ca, err := webhooktest.NewCA("e2e webhook CA")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.WriteServing(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	writeKubeFile(t, cfg, []byte(config))
	addr := registryproc.FreeAddr(t)
	return startWebhook(t, bin, ca, addr, append([]string{"--config", cfg, "--listen-address", addr,
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--kubeconfig", kubeconfig}, extra...)...), ca
}

func startWebhook(t *testing.T, bin string, ca *webhooktest.CA, addr string, args ...string) *webhookProc {
	t.Helper()
	w := &webhookProc{cmd: exec.Command(bin, append([]string{"webhook"}, args...)...), base: "https://" + addr,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}},
		done:   make(chan struct{})}
	w.cmd.Stdout, w.cmd.Stderr = w, w
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		w.stop(t)
		if t.Failed() || os.Getenv("E2E_LOG") != "" {
			t.Logf("webhook log:\n%s", w.logText())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := w.client.Get(w.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return w
			}
		}
		select {
		case <-w.done:
			t.Fatalf("webhook exited: %v\n%s", w.cmd.ProcessState, w.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not ready: %v\n%s", err, w.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *webhookProc) stop(t *testing.T) {
	select {
	case <-w.done:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(15 * time.Second):
		t.Error("webhook did not stop on SIGTERM")
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

func (w *webhookProc) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := w.client.Get(w.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitLog waits for a log line holding every part.
func (w *webhookProc) waitLog(ctx context.Context, t *testing.T, parts ...string) {
	t.Helper()
	for {
		for _, line := range strings.Split(w.logText(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no webhook log line with %q", parts)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func createNamespace(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No controller-manager: the default service account is ours to make.
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func registerWebhook(ctx context.Context, t *testing.T, c kubernetes.Interface, url string, caPEM []byte) {
	t.Helper()
	ignore := admissionregistrationv1.Ignore
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	timeout := int32(10)
	_, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "k8s-image-swapper"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "pods.k8s-image-swapper.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			FailurePolicy:           &ignore,
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1", "v1beta1"},
			Rules: []admissionregistrationv1.RuleWithOperations{
				{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}},
				{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/ephemeralcontainers"}}},
			},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// waitWebhookActive dry-runs pods until the API server calls the webhook
// (it picks up a new configuration asynchronously).
func waitWebhookActive(ctx context.Context, t *testing.T, c kubernetes.Interface, image, want string) {
	t.Helper()
	for {
		p, err := c.CoreV1().Pods("apps").Create(ctx, podSpec("probe", image), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && p.Spec.Containers[0].Image == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("webhook never active: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func podSpec(name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func createPod(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name, image string) *corev1.Pod {
	t.Helper()
	p, err := c.CoreV1().Pods(ns).Create(ctx, podSpec(name, image), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return p
}

func kubectl(t *testing.T, k *kubeCluster, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	out, err := exec.Command(bin, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func remoteImage(t *testing.T, ref string, a authn.Authenticator) v1.Image {
	t.Helper()
	opts := []remote.Option{}
	if a != nil {
		opts = append(opts, remote.WithAuth(a))
	}
	img, err := remote.Image(mustRef(t, ref), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func imageDigest(t *testing.T, ref string, a authn.Authenticator) v1.Hash {
	t.Helper()
	d, err := remoteImage(t, ref, a).Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func pushAuth(t *testing.T, ref string, img v1.Image, a authn.Authenticator) {
	t.Helper()
	if err := remote.Write(mustRef(t, ref), img, remote.WithAuth(a)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// waitInRegistry waits until ref is in its registry with digest want.
func waitInRegistry(ctx context.Context, t *testing.T, ref string, want v1.Hash) {
	t.Helper()
	if !inRegistry(ctx, t, ref, want) {
		t.Fatalf("%s never appeared", ref)
	}
}

// inRegistry waits until ref is in its registry with digest want, or ctx ends.
func inRegistry(ctx context.Context, t *testing.T, ref string, want v1.Hash) bool {
	t.Helper()
	r := mustRef(t, ref)
	for {
		if d, err := remote.Head(r); err == nil {
			if d.Digest != want {
				t.Fatalf("%s has digest %s, want %s", ref, d.Digest, want)
			}
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
