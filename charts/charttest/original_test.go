package charttest

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// An upgrade from the original chart (estahn/charts k8s-image-swapper
// 1.11.0) keeps its Deployment: same name (the release's full name) and the
// same selector, which cannot change in place. Its Service still selects the
// pods, and the HorizontalPodAutoscaler keeps its name and target.
func TestOriginalChartNames(t *testing.T) {
	objs := render(t, "-f", "ci/original-defaults-values.yaml", "--set", "autoscaling.enabled=true")
	dep := as[*appsv1.Deployment](t, find(t, objs, "Deployment", ""))
	if dep.Name != release+"-k8s-image-swapper" {
		t.Errorf("Deployment %s, want the original's %s-k8s-image-swapper", dep.Name, release)
	}
	// The original's selectorLabels for templates outside job-patch/.
	original := map[string]string{
		"app.kubernetes.io/name":      "k8s-image-swapper",
		"app.kubernetes.io/instance":  release,
		"app.kubernetes.io/component": "app",
	}
	if !maps.Equal(dep.Spec.Selector.MatchLabels, original) || len(dep.Spec.Selector.MatchExpressions) != 0 {
		t.Errorf("selector %v, want the original's %v", dep.Spec.Selector, original)
	}
	pods := labels.Set(dep.Spec.Template.Labels)
	svc := as[*corev1.Service](t, find(t, objs, "Service", release+"-k8s-image-swapper"))
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) {
		t.Errorf("the Service selects %v, not the webhook pods %v", svc.Spec.Selector, pods)
	}
	for _, o := range findAll(objs, "DaemonSet") {
		ds := as[*appsv1.DaemonSet](t, o)
		if labels.SelectorFromSet(dep.Spec.Selector.MatchLabels).Matches(labels.Set(ds.Spec.Template.Labels)) {
			t.Errorf("the webhook's selector also matches the pods of %s", ds.Name)
		}
	}
	hpa := as[*autoscalingv2.HorizontalPodAutoscaler](t, find(t, objs, "HorizontalPodAutoscaler", ""))
	if hpa.Name != dep.Name || hpa.Spec.ScaleTargetRef.Name != dep.Name {
		t.Errorf("HPA %s targets %s, want both %s", hpa.Name, hpa.Spec.ScaleTargetRef.Name, dep.Name)
	}
}

// commonLabels values go through tpl, as in the original chart, and are
// label strings whatever they look like.
func TestCommonLabelsTemplated(t *testing.T) {
	values := filepath.Join(t.TempDir(), "labels.yaml")
	if err := os.WriteFile(values, []byte("commonLabels:\n  team: \"{{ .Release.Namespace }}-ops\"\n  audited: \"true\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	objs := render(t, "-f", values)
	for _, o := range objs {
		l := o.U.GetLabels()
		if l["team"] != namespace+"-ops" || l["audited"] != "true" {
			t.Errorf("%s labels %v, want team=%s-ops audited=true", o, l, namespace)
		}
	}
	dep := as[*appsv1.Deployment](t, find(t, objs, "Deployment", ""))
	if _, ok := dep.Spec.Selector.MatchLabels["team"]; ok {
		t.Errorf("commonLabels reached the selector: %v", dep.Spec.Selector.MatchLabels)
	}
}

// strictConfig makes every process that reads the config refuse unknown keys.
func TestStrictConfig(t *testing.T) {
	for _, strict := range []bool{false, true} {
		var objs []object
		if strict {
			objs = render(t, "--set", "strictConfig=true")
		} else {
			objs = render(t)
		}
		dep := as[*appsv1.Deployment](t, find(t, objs, "Deployment", ""))
		ds := as[*appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "-proxy"))
		for _, c := range []corev1.Container{container(t, dep.Spec.Template.Spec, "webhook"),
			container(t, ds.Spec.Template.Spec, "proxy"), container(t, ds.Spec.Template.Spec, "containerd-config")} {
			if got := slices.Contains(c.Args, "--strict-config"); got != strict {
				t.Errorf("strictConfig=%t: %s has --strict-config %t (%v)", strict, c.Name, got, c.Args)
			}
		}
	}
}
