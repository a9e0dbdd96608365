//go:build e2e

package e2e

import (
	"bytes"
	"crypto/tls"
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

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook/webhooktest"
)

// originalProc is the binary started as the original chart starts it.
type originalProc struct {
	cmd  *exec.Cmd
	base string
	syncLog
	done chan struct{}
}

// startOriginal runs bin with args, in dir, with the given extra environment.
func startOriginal(t *testing.T, bin, dir, base string, env []string, args ...string) *originalProc {
	t.Helper()
	p := &originalProc{cmd: exec.Command(bin, args...), base: base, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() || os.Getenv("E2E_LOG") != "" {
			t.Logf("log:\n%s", p.String())
		}
	})
	return p
}

// probe is the kubelet's httpGet probe: any certificate, 2xx or 3xx is success.
var probeClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402 -- the kubelet does not verify probe certificates either

// waitProbe waits until GET path answers 200, failing when the process exits.
func (p *originalProc) waitProbe(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := probeClient.Get(p.base + path)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		select {
		case <-p.done:
			t.Fatalf("exited (%v) instead of serving %s:\n%s", p.cmd.ProcessState, path, p.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%s not 200: %v\n%s", p.base, path, err, p.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// imageInTarget starts a source and a target registry with one image in
// both, and returns them, the image and its target reference.
func imageInTarget(t *testing.T) (src, dst *registryproc.Registry, image, target string) {
	t.Helper()
	src = registryproc.Start(t, registryproc.Options{})
	dst = registryproc.Start(t, registryproc.Options{})
	image = src.Addr + "/team/app:v1"
	img := images.Image(t, 2048, 1, "linux/amd64")
	images.Push(t, image, img)
	target = dst.Addr + "/" + strings.Replace(image, ":", "_", 1)
	images.Push(t, target, img)
	return src, dst, image, target
}

// originalCerts writes a serving certificate where the original chart
// mounts its Secret (root stands for the container's /) and returns the
// paths of the certificate and key files, named cert and key as given.
func originalCerts(t *testing.T, root, cert, key string) (string, string) {
	t.Helper()
	dir := filepath.Join(root, "usr", "local", "certificates")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, err := webhooktest.NewCA("original chart CA")
	if err != nil {
		t.Fatal(err)
	}
	crt, k, err := ca.Issue("k8s-image-swapper.swapper.svc", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	writeKubeFile(t, filepath.Join(dir, cert), crt)
	writeKubeFile(t, filepath.Join(dir, key), k)
	return filepath.Join(dir, cert), filepath.Join(dir, key)
}

// v1beta1Review is a pod CREATE as the original chart's
// MutatingWebhookConfiguration (admissionReviewVersions: ["v1beta1"]) sends it.
func v1beta1Review(image string) []byte {
	return []byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{
"uid":"00000000-0000-0000-0000-000000000011","kind":{"group":"","version":"v1","kind":"Pod"},
"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"apps","operation":"CREATE",
"userInfo":{"username":"admin"},"object":{"kind":"Pod","apiVersion":"v1",
"metadata":{"name":"web","namespace":"apps"},"spec":{"containers":[{"name":"web","image":"` + image + `"}]}}}}`)
}

// review posts a review to /webhook and returns the JSON patch, "" for none.
func (p *originalProc) review(t *testing.T, body []byte) string {
	t.Helper()
	resp, err := probeClient.Post(p.base+"/webhook", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		APIVersion string `json:"apiVersion"`
		Response   struct {
			Allowed bool   `json:"allowed"`
			Patch   []byte `json:"patch"`
		} `json:"response"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != 200 || !out.Response.Allowed {
		t.Fatalf("review: %d %s (%v)", resp.StatusCode, b, err)
	}
	if out.APIVersion != "admission.k8s.io/v1beta1" {
		t.Errorf("answered in %s, want the version asked", out.APIVersion)
	}
	return string(out.Response.Patch)
}

// TestOriginalChartStart runs the binary exactly as the original chart
// (estahn/charts k8s-image-swapper 1.11.0, templates/deployment.yaml) runs
// it: no sub-command, its four arguments, the config mounted at
// /.k8s-image-swapper.yaml (here a temporary folder stands for /), the
// certificate files of its Secret (cert and key from its patch job, or
// tls.crt and tls.key from cert-manager), liveness and readiness probed at /
// over HTTPS, and reviews in admission.k8s.io/v1beta1.
func TestOriginalChartStart(t *testing.T) {
	bin := swapperbin.Path(t)
	src, dst, image, target := imageInTarget(t)

	for _, certs := range []struct{ name, cert, key string }{
		{"patch job secret", "cert", "key"},
		{"cert-manager secret", "tls.crt", "tls.key"},
	} {
		t.Run(certs.name, func(t *testing.T) {
			root := t.TempDir() // stands for the container's /
			certFile, keyFile := originalCerts(t, root, certs.cert, certs.key)
			// The chart's config value, as a user who turned dryRun off and
			// set a target has it (the ConfigMap's config.yaml).
			cfg := filepath.Join(root, ".k8s-image-swapper.yaml")
			writeKubeFile(t, cfg, []byte(fmt.Sprintf(`dryRun: false
logLevel: debug
logFormat: console
source:
  filters:
    - jmespath: "obj.metadata.namespace == 'kube-system'"
  registries:
    - type: generic
      generic: {registry: "%s", insecure: true}
target:
  type: generic
  generic: {registry: "%s", insecure: true}
`, src.Addr, dst.Addr)))
			port := strings.TrimPrefix(registryproc.FreeAddr(t), "127.0.0.1")
			p := startOriginal(t, bin, root, "https://127.0.0.1"+port, []string{"NO_COLOR=1"},
				"--config="+cfg,
				"--tls-cert-file="+certFile,
				"--tls-key-file="+keyFile,
				"--listen-address="+port)
			if body := p.waitProbe(t, "/"); !strings.Contains(body, "k8s-image-swapper") {
				t.Errorf("/ answered %q", body)
			}
			if patch := p.review(t, v1beta1Review(image)); !strings.Contains(patch, `"value":"`+target+`"`) {
				t.Errorf("review not mutated to %s: patch %s", target, patch)
			}
			// logFormat console: zerolog's console lines.
			if log := p.String(); !strings.Contains(log, " INF webhook starting") {
				t.Errorf("no console log line: %s", log)
			}
		})
	}
}

// TestNoArguments: with no arguments the binary runs the webhook with its
// defaults (the config file from $HOME, here only to pick a free port), as
// the original did, and neither prints its help nor exits.
func TestNoArguments(t *testing.T) {
	bin := swapperbin.Path(t)
	home, work := t.TempDir(), t.TempDir()
	addr := registryproc.FreeAddr(t)
	writeKubeFile(t, filepath.Join(home, ".k8s-image-swapper.yaml"), []byte("listenAddress: "+addr+"\n"))
	p := startOriginal(t, bin, work, "http://"+addr, []string{"HOME=" + home})
	p.waitProbe(t, "/")
	p.waitProbe(t, "/readyz")
	if strings.Contains(p.String(), "Usage:") {
		t.Errorf("printed its help:\n%s", p.String())
	}
}

// TestOriginalChartDryRun: the original chart's default config has
// dryRun: true, which the original never read. Started as that chart starts
// it, the webhook honours it, and says so: in its log, on /readyz and in
// k8s_image_swapper_dry_run; / still answers 200 for the chart's probes.
func TestOriginalChartDryRun(t *testing.T) {
	bin := swapperbin.Path(t)
	_, dst, image, _ := imageInTarget(t)

	root := t.TempDir()
	certFile, keyFile := originalCerts(t, root, "cert", "key")
	// The original chart's config value as it ships (values.yaml), the
	// target aside: a local registry stands for its example ECR account.
	cfg := filepath.Join(root, ".k8s-image-swapper.yaml")
	writeKubeFile(t, cfg, []byte(fmt.Sprintf(`dryRun: true
logLevel: debug
logFormat: console
source:
  filters:
  - jmespath: obj.metadata.namespace == 'kube-system'
target:
  type: generic
  generic: {registry: "%s", insecure: true}
`, dst.Addr)))
	port := strings.TrimPrefix(registryproc.FreeAddr(t), "127.0.0.1")
	p := startOriginal(t, bin, root, "https://127.0.0.1"+port, []string{"NO_COLOR=1"},
		"--config="+cfg, "--tls-cert-file="+certFile, "--tls-key-file="+keyFile,
		"--listen-address="+port)
	p.waitProbe(t, "/")
	if body := p.waitProbe(t, "/readyz"); !strings.Contains(body, "dry run (dryRun: true)") {
		t.Errorf("/readyz does not say dry run: %q", body)
	}
	if patch := p.review(t, v1beta1Review(image)); patch != "" {
		t.Errorf("a dry run patched the pod: %s", patch)
	}
	if m := p.waitProbe(t, "/metrics"); !strings.Contains(m, "\nk8s_image_swapper_dry_run 1\n") {
		t.Errorf("/metrics lacks k8s_image_swapper_dry_run 1")
	}
	if log := p.String(); !strings.Contains(log, "WRN dry run (dryRun: true): images are neither copied nor rewritten") {
		t.Errorf("no dry-run warning in the log:\n%s", log)
	}
}
