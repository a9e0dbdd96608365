package pullsecrets

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// rbacClient is a fake API server that refuses, as RBAC would, every verb
// on a resource that allowed does not list.
func rbacClient(allowed map[string][]string, objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	for _, res := range []string{"secrets", "serviceaccounts"} {
		verbs := allowed[res]
		can := func(v string) bool {
			for _, a := range verbs {
				if a == v {
					return true
				}
			}
			return false
		}
		forbid := func(verb string) error {
			return apierrors.NewForbidden(schema.GroupResource{Resource: res}, "", nil)
		}
		for _, verb := range []string{"get", "list"} {
			if !can(verb) {
				c.PrependReactor(verb, res, func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, forbid(verb) })
			}
		}
		if !can("watch") {
			c.PrependWatchReactor(res, func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, forbid("watch") })
		}
	}
	return c
}

func podObjects() []runtime.Object {
	return []runtime.Object{
		jsonSecret("app", "pod-secret", `{"auths":{"pod.example.com":{"username":"pod","password":"p"}}}`),
		cfgSecret("app", "sa-secret", `{"sa.example.com":{"username":"sa","password":"p"}}`),
		&corev1.ServiceAccount{
			ObjectMeta:       metav1.ObjectMeta{Namespace: "app", Name: "builder"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "sa-secret"}},
		},
	}
}

func resolveUser(t *testing.T, p *Keychains, ref string) string {
	t.Helper()
	kc := p.Keychain("app", []string{"pod-secret"}, "builder")
	if kc == nil {
		return ""
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	a, err := kc.Resolve(r.Context())
	if err != nil {
		t.Fatal(err)
	}
	ac, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return ac.Username
}

func verbsUsed(c *fake.Clientset, res string) map[string]int {
	out := map[string]int{}
	for _, a := range c.Actions() {
		if a.GetResource().Resource == res {
			out[a.GetVerb()]++
		}
	}
	return out
}

// With the rights the original chart grants (secrets: get and watch,
// service accounts: get), the caches cannot list: the webhook must not wait
// for them. Each secret is read with get when a copy needs it, as the
// original did, and the limit is logged once.
func TestPullSecretsWithOriginalChartRights(t *testing.T) {
	c := rbacClient(map[string][]string{"secrets": {"get", "watch"}, "serviceaccounts": {"get"}}, podObjects()...)
	var logs bytes.Buffer
	p := New(c, "", 0, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Start(ctx)
	sync, scancel := context.WithTimeout(ctx, time.Second)
	defer scancel()
	if err := p.WaitForSync(sync); err != nil {
		t.Fatalf("not ready under the original chart's rights: %v", err)
	}
	if got := strings.Count(logs.String(), "RBAC allows secrets: get only, service accounts: get only"); got != 1 {
		t.Errorf("the limit was logged %d times:\n%s", got, logs.String())
	}
	c.ClearActions()
	if u := resolveUser(t, p, "pod.example.com/a"); u != "pod" {
		t.Errorf("pod secret: %q", u)
	}
	if u := resolveUser(t, p, "sa.example.com/b"); u != "sa" {
		t.Errorf("service account's secret: %q", u)
	}
	// Two keychains of one pod read each object once (kept for a minute).
	if v := verbsUsed(c, "secrets"); v["get"] != 2 || len(v) != 1 {
		t.Errorf("secrets read with %v, want 2 gets", v)
	}
	if v := verbsUsed(c, "serviceaccounts"); v["get"] != 1 || len(v) != 1 {
		t.Errorf("service accounts read with %v, want 1 get", v)
	}
}

// With no rights at all (the original chart without secretReader.enabled),
// the webhook is ready and copies go with the config's credentials only.
func TestPullSecretsWithNoRights(t *testing.T) {
	c := rbacClient(nil, podObjects()...)
	var logs bytes.Buffer
	p := New(c, "", 0, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Start(ctx)
	if err := p.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "without any, copies use only the config's credentials") {
		t.Errorf("not logged:\n%s", logs.String())
	}
	if u := resolveUser(t, p, "pod.example.com/a"); u != "" {
		t.Errorf("credentials without rights: %q", u)
	}
}

// A names-only rule without list (the original chart with
// secretReader.secretNames): get of those names.
func TestPullSecretsNamesWithGetOnly(t *testing.T) {
	c := rbacClient(map[string][]string{"secrets": {"get", "watch"}, "serviceaccounts": {"get"}}, podObjects()...)
	p := New(c, "", 0, slog.New(slog.DiscardHandler), "sa-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Start(ctx)
	if err := p.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	if u := resolveUser(t, p, "sa.example.com/b"); u != "sa" {
		t.Errorf("named secret: %q", u)
	}
	c.ClearActions()
	if u := resolveUser(t, p, "pod.example.com/a"); u != "" {
		t.Errorf("a secret outside the names was used: %q", u)
	}
	for _, a := range c.Actions() {
		if g, ok := a.(k8stesting.GetAction); ok && g.GetName() == "pod-secret" {
			t.Errorf("read a secret outside the names")
		}
	}
}
