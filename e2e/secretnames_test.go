//go:build e2e

package e2e

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/pullsecrets"
)

// TestPullSecretsByName: with RBAC restricted to named secrets (the chart's
// secretReader.secretNames), the webhook's pull-secret cache must still fill
// and find those secrets. A cluster-wide list is refused under such a rule,
// so the cache watches each name with a metadata.name field selector.
func TestPullSecretsByName(t *testing.T) {
	k := startKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := k.Client
	const ns = "apps"
	mustCreate(t, func() error {
		_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	docker := []byte(`{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}}`)
	for _, name := range []string{"regcred", "other"} {
		mustCreate(t, func() error {
			_, err := c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name}, Type: corev1.SecretTypeDockerConfigJson,
				Data: map[string][]byte{corev1.DockerConfigJsonKey: docker},
			}, metav1.CreateOptions{})
			return err
		})
	}
	// The webhook's identity: secrets by name only, as the chart renders it.
	token := serviceAccountWithRules(ctx, t, c, "swapper", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"regcred"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get", "list", "watch"}},
	})
	cfg := rest.CopyConfig(k.Config)
	cfg.BearerToken = token
	limited, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Named: the cache fills and finds regcred, and only regcred.
	ps := pullsecrets.New(limited, "", time.Minute, log, "regcred")
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	ps.Start(sctx)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := ps.WaitForSync(wctx); err != nil {
		t.Fatalf("named cache did not sync under a names-only rule: %v", err)
	}
	kc := ps.Keychain(ns, []string{"regcred"}, "")
	if kc == nil {
		t.Fatal("regcred not found through the named cache")
	}
	a, err := kc.Resolve(registryResource("registry.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := a.Authorization(); err != nil || cfg.Username != "user" || cfg.Password != "pass" {
		t.Errorf("credentials: %+v %v", cfg, err)
	}
	if ps.Keychain(ns, []string{"other"}, "") != nil {
		t.Error("a secret outside the allowed names was read")
	}

	// Unnamed (as the original chart with secretNames runs the original,
	// which had no such flag): a cluster-wide list is refused under this
	// rule, so the webhook does not wait for a cache that cannot fill; it
	// reads each secret with get, which the rule allows for its names only.
	all := pullsecrets.New(limited, "", time.Minute, log)
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	all.Start(actx)
	short, scancel := context.WithTimeout(ctx, 3*time.Second)
	defer scancel()
	if err := all.WaitForSync(short); err != nil {
		t.Errorf("unnamed reader not ready under a names-only rule: %v", err)
	}
	if a, err := all.Keychain(ns, []string{"regcred"}, "").Resolve(registryResource("registry.example.com")); err != nil || a == authn.Anonymous {
		t.Errorf("regcred, which the rule allows, not read with get: %v %v", a, err)
	}
	if a, err := all.Keychain(ns, []string{"other"}, "").Resolve(registryResource("registry.example.com")); err != nil || a != authn.Anonymous {
		t.Errorf("a secret outside the rule's names was read: %v %v", a, err)
	}
}

// serviceAccountWithRules makes a service account in "default" bound to a
// ClusterRole of rules, both named name, and returns a token of it.
func serviceAccountWithRules(ctx context.Context, t *testing.T, c kubernetes.Interface, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	mustCreate(t, func() error {
		_, err := c.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: "default"}},
		}, metav1.CreateOptions{})
		return err
	})
	tok, err := c.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Status.Token
}

func mustCreate(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

type registryResource string

func (r registryResource) String() string      { return string(r) }
func (r registryResource) RegistryStr() string { return string(r) }

var _ authn.Resource = registryResource("")
