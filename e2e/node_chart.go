//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/rollout"
)

// swapperRelease is the chart installed on a kubeNode with `helm install`.
type swapperRelease struct {
	node      *kubeNode
	helmBin   string
	Name, NS  string
	ProxyPort string
}

// nodeValues are the chart values of the node tests: the image `make image` built (pushed
// to the node's registry), the node's containerd folders, plain-HTTP registries on the
// node's address, and the config given.
func nodeValues(repo, hostsDir, containerdConfig, proxyPort, config string, plainHTTP ...string) string {
	return fmt.Sprintf(`replicaCount: 1
image:
  repository: %q
  tag: e2e
config:
%s
proxy:
  port: %s
  containerd:
    certsDir: %q
    configFile: %q
    plainHTTP: [%s]
  dataVolume:
    emptyDir: {}
`, repo, indent(config, "  "), proxyPort, hostsDir, containerdConfig, `"`+strings.Join(plainHTTP, `", "`)+`"`)
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return by + strings.Join(lines, "\n"+by)
}

// helm runs helm against the node's cluster.
func (r *swapperRelease) helm(ctx context.Context, t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, r.helmBin, append(args, "--kubeconfig", r.node.Kubeconfig)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s\n%s", strings.Join(args, " "), err, out.String(), r.state(t))
	}
	t.Logf("helm %s (%s)", args[0], time.Since(start).Round(time.Second))
	return out.String()
}

// state is what the release's pods and events look like, for failures.
func (r *swapperRelease) state(t testing.TB) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"get", "pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"logs", "-n", r.NS, "-l", "app.kubernetes.io/instance=" + r.Name, "--all-containers", "--prefix", "--tail=40"},
	} {
		out, _ := exec.Command("kubectl", append([]string{"--kubeconfig", r.node.Kubeconfig}, args...)...).CombinedOutput()
		fmt.Fprintf(&b, "$ kubectl %s\n%s\n", strings.Join(args, " "), out)
	}
	return b.String()
}

// install runs helm install --wait with the values file.
func (r *swapperRelease) install(ctx context.Context, t testing.TB, values string) {
	t.Helper()
	f := filepath.Join(r.node.Dir, "values-install.yaml")
	writeKubeFile(t, f, []byte(values))
	r.helm(ctx, t, "install", r.Name, filepath.Join(repoRoot(), "charts", "k8s-image-swapper"),
		"--namespace", r.NS, "--create-namespace", "-f", f, "--wait", "--timeout", "5m")
	r.waitReady(ctx, t)
}

// upgrade runs helm upgrade --wait with a new values file.
func (r *swapperRelease) upgrade(ctx context.Context, t testing.TB, values string) {
	t.Helper()
	f := filepath.Join(r.node.Dir, "values-upgrade.yaml")
	writeKubeFile(t, f, []byte(values))
	r.helm(ctx, t, "upgrade", r.Name, filepath.Join(repoRoot(), "charts", "k8s-image-swapper"),
		"--namespace", r.NS, "-f", f, "--wait", "--timeout", "5m")
	r.waitReady(ctx, t)
}

// waitReady waits until the webhook Deployment, the proxy DaemonSet (and the hub's
// StatefulSet, when there is one) are rolled out and Ready. `helm --wait` is not enough on one node: it counts a DaemonSet ready with
// desired - maxUnavailable pods, and the chart's 10% rounds up to 1, so zero ready pods pass.
func (r *swapperRelease) waitReady(ctx context.Context, t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	waitFor(ctx, t, "the webhook and the proxy Ready", func() bool {
		deps, err := r.node.Client.AppsV1().Deployments(r.NS).List(ctx, metav1.ListOptions{})
		if err != nil || len(deps.Items) != 1 {
			return false
		}
		d := deps.Items[0]
		if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != *d.Spec.Replicas ||
			d.Status.ReadyReplicas != *d.Spec.Replicas || d.Status.Replicas != *d.Spec.Replicas {
			return false
		}
		sts, err := r.node.Client.AppsV1().StatefulSets(r.NS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, s := range sts.Items { // the hub, when it holds the store
			if s.Status.ObservedGeneration < s.Generation || s.Status.ReadyReplicas != *s.Spec.Replicas ||
				s.Status.UpdatedReplicas != *s.Spec.Replicas {
				return false
			}
		}
		dss, err := r.node.Client.AppsV1().DaemonSets(r.NS).List(ctx, metav1.ListOptions{})
		if err != nil || len(dss.Items) != 1 {
			return false
		}
		done, _ := rollout.DaemonSetDone(&dss.Items[0])
		return done && dss.Items[0].Status.NumberReady == dss.Items[0].Status.DesiredNumberScheduled
	})
}

// proxyMetric sums a metric of the node's proxy (hostNetwork, on the node's loopback).
func (r *swapperRelease) proxyMetric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	return (&proxyProcess{Addr: "127.0.0.1:" + r.ProxyPort}).metric(t, name, labels)
}

// proxyPods are the release's proxy pods.
func (r *swapperRelease) proxyPods(ctx context.Context, t testing.TB) []corev1.Pod {
	t.Helper()
	l, err := r.node.Client.CoreV1().Pods(r.NS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + r.Name + ",app.kubernetes.io/component=proxy"})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// treeSnapshot is every folder and file under dir with its mode and bytes.
func treeSnapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			snap[rel] = fmt.Sprintf("dir %v", info.Mode())
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		snap[rel] = fmt.Sprintf("file %v\n%s", info.Mode(), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// diffSnapshots says how two snapshots differ, "" when they are the same.
func diffSnapshots(before, after map[string]string) string {
	var b strings.Builder
	for k, v := range before {
		if w, ok := after[k]; !ok {
			fmt.Fprintf(&b, "gone: %s\n", k)
		} else if w != v {
			fmt.Fprintf(&b, "changed: %s\n--- before\n%s\n--- after\n%s\n", k, v, w)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			fmt.Fprintf(&b, "added: %s\n", k)
		}
	}
	return b.String()
}
