//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook/webhooktest"
)

// TestFullLoop installs the system the way the chart does, with real processes in place of
// pods: `helm template` with test values gives the config file and the exact arguments of
// the webhook, the node setup (containerd-config) and the proxy; the binary runs with them
// (the chart's mount paths mapped to test folders, as the kubelet maps hostPath volumes).
// A Pod created through a real kube-apiserver gets its image rewritten to the target by the
// webhook; then, on a containerd 1.6 node and a containerd 2.x node configured by
// containerd-config, `crictl pull` of the rewritten image goes through the proxy: (i) served
// from the target when the image is there, (ii) when it is not yet, served from the source
// (fallback) and copied into the target. The proxy's /metrics (on its --metrics-address
// listener) and the registries' access logs say where each pull was served from.
func TestFullLoop(t *testing.T) {
	helmBin := kubeTool(t, "helm")
	kube := startKube(t)
	bin := swapperbin.Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	dir := t.TempDir()

	// The chart's values: the original's config keys (dryRun off: the original chart's
	// default is on), and the proxy on a free port with
	// its metrics listener on. imageCopyPolicy none: the webhook rewrites (always) but
	// never copies, so a fresh image is missing from the target until a node pulls it.
	port := func() string { _, p, _ := strings.Cut(registryproc.FreeAddr(t), ":"); return p }
	whPort, pxPort, metricsPort := port(), port(), port()
	values := filepath.Join(dir, "values.yaml")
	writeKubeFile(t, values, []byte(fmt.Sprintf(`containerPort: %[1]s
config:
  dryRun: false
  logLevel: debug
  imageSwapPolicy: always
  imageCopyPolicy: none
  source:
    registries:
      - type: generic
        generic: {registry: "%[4]s", insecure: true}
  target:
    type: generic
    generic: {registry: "%[5]s", insecure: true}
  proxy:
    registries: ["%[4]s"]
proxy:
  port: %[2]s
  containerd:
    plainHTTP: ["%[4]s", "%[5]s"]
  metrics:
    enabled: true
    port: %[3]s
`, whPort, pxPort, metricsPort, src.Addr, tgt.Addr)))
	out, err := exec.CommandContext(ctx, helmBin, "template", "rel", filepath.Join(repoRoot(), "charts", "k8s-image-swapper"),
		"--namespace", "swapper", "-f", values).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	chart := parseChart(t, out)

	// Files the pods would have mounted.
	ca, err := webhooktest.NewCA("full loop CA")
	if err != nil {
		t.Fatal(err)
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.WriteServing(tlsDir, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.yml")
	writeKubeFile(t, cfgFile, []byte(chart.config))
	mapPaths := func(args []string, extra ...string) []string {
		r := strings.NewReplacer(append(extra,
			"/etc/k8s-image-swapper/config.yml", cfgFile,
			"/etc/k8s-image-swapper/tls/", tlsDir+"/")...)
		var out []string
		for _, a := range args {
			out = append(out, r.Replace(a))
		}
		return out
	}

	// The webhook, registered as the chart registers it but by URL (no Service here).
	whArgs := mapPaths(chart.args["webhook"])
	whAddr := "127.0.0.1:" + whPort
	startWebhook(t, bin, ca, whAddr, whArgs[1:]...)
	c := kube.Client
	createNamespace(ctx, t, c, "apps")
	registerWebhook(ctx, t, c, "https://"+whAddr+"/webhook", ca.CertPEM)
	toTarget := func(ref string) string { return tgt.Addr + "/" + strings.Replace(ref, ":", "_", 1) }
	probe := src.Addr + "/e2e/probe:v1"
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	waitWebhookActive(wctx, t, c, probe, toTarget(probe))
	wcancel()

	platform := "linux/" + runtime.GOARCH
	for _, n := range []struct {
		name string
		opts containerdOptions
	}{
		{"containerd 1.6", containerdOptions{}},
		// config_path one folder: what the check accepts for 2.x (TestContainerd2HostsToml).
		{"containerd 2.x", containerdOptions{V2: true}},
	} {
		t.Run(n.name, func(t *testing.T) {
			node := startContainerdWith(t, n.opts)
			slug := map[bool]string{true: "v2", false: "v1"}[n.opts.V2]
			nodeDir := t.TempDir()
			hostPaths := []string{
				"/host/etc/containerd/certs.d", node.HostsDir,
				"/host/etc/containerd/config.toml", node.Config,
				"=/etc/containerd/certs.d", "=" + node.HostsDir,
				"/var/lib/k8s-image-swapper", nodeDir,
			}

			// The init container: hosts.toml for the source and the target, after the
			// check of the node's config.toml.
			initArgs := mapPaths(chart.args["containerd-config"], hostPaths...)
			if !strings.Contains(strings.Join(initArgs, " "), "--containerd-config="+node.Config) {
				t.Fatalf("the chart's node setup does not check containerd's config: %v", initArgs)
			}
			if out, err := exec.CommandContext(ctx, bin, initArgs...).CombinedOutput(); err != nil {
				t.Fatalf("containerd-config %v: %v\n%s", initArgs, err, out)
			}
			for _, h := range []string{src.Addr, tgt.Addr} {
				if _, err := os.Stat(filepath.Join(node.HostsDir, h, "hosts.toml")); err != nil {
					t.Fatalf("no hosts.toml for %s: %v", h, err)
				}
			}
			px := startChartProxy(t, chartBinary(t, chart.commands["proxy"]), nodeDir, mapPaths(chart.args["proxy"], hostPaths...), "127.0.0.1:"+metricsPort)
			served := func(from string) float64 {
				return px.metrics.metric(t, "k8s_image_swapper_proxy_requests_total", map[string]string{"served_from": from})
			}

			// (i) The image is in the target already.
			present := fmt.Sprintf("%s/e2e/present-%s:v1", src.Addr, slug)
			img := images.Image(t, 128<<10, 2, platform)
			want := images.Push(t, present, img)
			images.Push(t, toTarget(present), img)
			pod := createPod(ctx, t, c, "apps", "present-"+slug, present)
			if got := pod.Spec.Containers[0].Image; got != toTarget(present) {
				t.Fatalf("pod image %q, want %q", got, toTarget(present))
			}
			src.ResetLog()
			fromTarget, fromSource := served("target"), served("source")+served("fallback")
			crictlPull(ctx, t, node, pod, img)
			if got := served("target") - fromTarget; got < 3 {
				t.Errorf("(i) the proxy served %v requests from the target, want the manifest and the blobs", got)
			}
			if got := served("source") + served("fallback") - fromSource; got != 0 {
				t.Errorf("(i) the proxy served %v requests from the source", got)
			}
			// The proxy may ask the source whether the repository is public (tags/list);
			// no manifest or blob of it may come from there.
			if n := src.Count(http.MethodGet, "/v2/e2e/present-"+slug+"/manifests/") + src.Count(http.MethodGet, "/v2/e2e/present-"+slug+"/blobs/"); n != 0 {
				t.Errorf("(i) the source registry served %d manifests and blobs of an image the target has: %v", n, src.Requests())
			}

			// (ii) A fresh image, not in the target yet: the pull falls back to the source
			// through the proxy, and the copy lands in the target.
			fresh := fmt.Sprintf("%s/e2e/fresh-%s:v1", src.Addr, slug)
			img = images.Image(t, 128<<10, 2, platform)
			want = images.Push(t, fresh, img)
			pod = createPod(ctx, t, c, "apps", "fresh-"+slug, fresh)
			if got := pod.Spec.Containers[0].Image; got != toTarget(fresh) {
				t.Fatalf("pod image %q, want %q (imageSwapPolicy always)", got, toTarget(fresh))
			}
			if _, err := remote.Head(mustRef(t, toTarget(fresh))); err == nil {
				t.Fatalf("(ii) %s is in the target before any pull", toTarget(fresh))
			}
			before := served("fallback")
			src.ResetLog()
			crictlPull(ctx, t, node, pod, img)
			if got := served("fallback") - before; got < 1 {
				t.Errorf("(ii) the proxy served %v requests as fallback to the source", got)
			}
			if n := src.Count(http.MethodGet, "/v2/e2e/fresh-"+slug+"/manifests/"); n < 1 {
				t.Errorf("(ii) the source registry served no manifest")
			}
			proxyWaitTarget(t, toTarget(fresh), want)

			// The metrics listener serves metrics and health, not the registry API.
			if code := httpStatus(t, "http://"+px.metrics.Addr+"/v2/"); code != http.StatusNotFound {
				t.Errorf("GET /v2/ on the metrics address: %d, want 404", code)
			}
			if code := httpStatus(t, "http://"+px.metrics.Addr+"/readyz"); code != http.StatusOK {
				t.Errorf("GET /readyz on the metrics address: %d", code)
			}
		})
	}
}

// crictlPull pulls the pod's image on node through CRI and checks it is img.
func crictlPull(ctx context.Context, t *testing.T, node *containerdNode, pod *corev1.Pod, img v1.Image) {
	t.Helper()
	out, err := node.Crictl(t, ctx, "pull", pod.Spec.Containers[0].Image)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := img.ConfigName(); err != nil || !strings.Contains(out, id.String()) {
		t.Fatalf("crictl pulled another image: %s", out)
	}
}

// renderedChart is what the full loop takes from `helm template`.
type renderedChart struct {
	config   string              // the ConfigMap's config.yml
	args     map[string][]string // container name -> its args (the sub-command first)
	commands map[string][]string // container name -> its command (none: the image's entrypoint)
}

func parseChart(t *testing.T, out []byte) renderedChart {
	t.Helper()
	rc := renderedChart{args: map[string][]string{}, commands: map[string][]string{}}
	for _, doc := range bytes.Split(out, []byte("\n---")) {
		var head struct {
			Kind string `json:"kind"`
			Data map[string]string
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("rendered object: %v\n%s", err, doc)
		}
		var spec *corev1.PodSpec
		switch head.Kind {
		case "ConfigMap":
			if c, ok := head.Data["config.yml"]; ok {
				rc.config = c
			}
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.Unmarshal(doc, &d); err != nil {
				t.Fatal(err)
			}
			spec = &d.Spec.Template.Spec
		case "DaemonSet":
			var d appsv1.DaemonSet
			if err := yaml.Unmarshal(doc, &d); err != nil {
				t.Fatal(err)
			}
			if d.Annotations["helm.sh/hook"] != "" {
				continue // the uninstall cleanup
			}
			spec = &d.Spec.Template.Spec
		}
		if spec == nil {
			continue
		}
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			if _, ok := rc.args[c.Name]; !ok {
				rc.args[c.Name], rc.commands[c.Name] = c.Args, c.Command
			}
		}
	}
	for _, name := range []string{"webhook", "containerd-config", "proxy"} {
		if len(rc.args[name]) == 0 || rc.args[name][0] != name {
			t.Fatalf("the chart has no %s container running `%s`: %v", name, name, rc.args[name])
		}
	}
	if rc.config == "" {
		t.Fatal("the chart rendered no config.yml")
	}
	return rc
}

// chartBinary is the binary a container of the chart runs.
func chartBinary(t *testing.T, command []string) string {
	t.Helper()
	bin, ok := swapperbin.ForCommand(t, command)
	if !ok {
		t.Fatalf("the chart runs %v, which is not a binary of the image", command)
	}
	return bin
}

// chartProxy is the proxy started with the chart's arguments.
type chartProxy struct {
	cmd     *exec.Cmd
	metrics *proxyProcess // only Addr (the metrics listener) is used, for metric()
	syncLog
}

func startChartProxy(t *testing.T, bin, workDir string, args []string, metricsAddr string) *chartProxy {
	t.Helper()
	p := &chartProxy{cmd: exec.Command(bin, args...), metrics: &proxyProcess{Addr: metricsAddr}}
	p.cmd.Dir = workDir // the chart's workingDir
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() || os.Getenv("E2E_LOG") != "" {
			t.Logf("proxy %v log:\n%s", args, p.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for httpStatus(t, "http://"+metricsAddr+"/healthz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("proxy %v did not serve /healthz on %s", args, metricsAddr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// httpStatus is the status of a GET, 0 when the request fails.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
