package charttest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// images lists the image of every container of every pod the chart renders: workloads, hooks
// and the test pod.
func images(objs []object) map[string][]string {
	used := map[string][]string{}
	for _, o := range objs {
		spec := podSpec(o)
		if spec == nil {
			continue
		}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			used[c.Image] = append(used[c.Image], o.String()+" "+c.Name)
		}
	}
	return used
}

// TestOneImage: an air-gapped cluster mirrors one image to install, test and uninstall the
// chart; by default it is the one a release publishes (image.repository at the appVersion).
func TestOneImage(t *testing.T) {
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	b, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.Unmarshal(b, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %q, %v", chart.AppVersion, err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"defaults", nil, "ghcr.io/k8s-image-swapper/k8s-image-swapper:" + chart.AppVersion},
		{"mirrored", []string{"--set", "image.repository=registry.internal/mirror/swapper", "--set", "image.tag=1.2.3"},
			"registry.internal/mirror/swapper:1.2.3"},
		{"full", []string{"-f", filepath.Join(chartDir(t), "ci", "full-values.yaml"), "--set", "image.repository=registry.internal/swapper"},
			"registry.internal/swapper:" + chart.AppVersion},
	} {
		t.Run(c.name, func(t *testing.T) {
			used := images(render(t, c.args...))
			if len(used) != 1 || used[c.want] == nil {
				t.Errorf("images %v, want only %s", used, c.want)
			}
			if n := len(used[c.want]); n < 6 {
				t.Errorf("only %d containers run %s: %v", n, c.want, used[c.want])
			}
		})
	}
}

// TestTestPod: `helm test` asks the webhook's /healthz through its Service's DNS name and
// checks the serving certificate against the chart's CA; test.image brings back the original
// chart's wget test.
func TestTestPod(t *testing.T) {
	pod := as[*corev1.Pod](t, find(t, render(t), "Pod", "-test"))
	c := pod.Spec.Containers[0]
	url := "https://" + release + "-k8s-image-swapper." + namespace + ".svc:443/healthz"
	if len(c.Args) == 0 || c.Args[0] != "probe" || c.Args[len(c.Args)-1] != url || !slices.Contains(c.Args, "--ca-file=/etc/k8s-image-swapper/ca/ca.crt") {
		t.Errorf("the test pod runs %v, want probe --ca-file ... %s", c.Args, url)
	}
	if len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].Secret == nil ||
		pod.Spec.Volumes[0].Secret.SecretName != release+"-k8s-image-swapper-tls" ||
		len(pod.Spec.Volumes[0].Secret.Items) != 1 || pod.Spec.Volumes[0].Secret.Items[0].Key != "ca.crt" {
		t.Errorf("the test pod mounts %+v, want only ca.crt of the webhook's TLS secret", pod.Spec.Volumes)
	}
	legacy := as[*corev1.Pod](t, find(t, render(t, "--set", "test.image=busybox"), "Pod", "-test"))
	lc := legacy.Spec.Containers[0]
	if lc.Image != "busybox" || len(lc.Command) == 0 || lc.Command[0] != "wget" || lc.Command[len(lc.Command)-1] != url {
		t.Errorf("test.image=busybox runs %s %v", lc.Image, lc.Command)
	}
}

// TestProxyCommand: the proxy DaemonSet runs the image's node proxy binary (the proxy alone,
// less memory on every node); an empty proxy.command runs the entrypoint, for a proxy.image
// built without it.
func TestProxyCommand(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"defaults", nil, []string{"/usr/local/bin/k8s-image-swapper-proxy"}},
		{"entrypoint", []string{"--set-json", "proxy.command=[]"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := podSpec(find(t, render(t, c.args...), "DaemonSet", "-proxy"))
			for _, ct := range spec.Containers {
				if ct.Name == "proxy" && !slices.Equal(ct.Command, c.want) {
					t.Errorf("proxy container command %v, want %v", ct.Command, c.want)
				}
			}
		})
	}
}
