package pullsecrets

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func jsonSecret(ns, n, cfg string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)},
	}
}

func cfgSecret(ns, n, cfg string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n},
		Type:       corev1.SecretTypeDockercfg,
		Data:       map[string][]byte{corev1.DockerConfigKey: []byte(cfg)},
	}
}

func TestParseSecret(t *testing.T) {
	got, err := parseSecret(jsonSecret("ns", "a", `{"auths":{"r.example.com":{"auth":"`+b64("u:p:x")+`"},`+
		`"https://other.example.com/v2/":{"username":"u2","password":"p2"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := got["r.example.com"]; c.Username != "u" || c.Password != "p:x" {
		t.Errorf("auth field: got %+v", c)
	}
	if c := got["https://other.example.com/v2/"]; c.Username != "u2" || c.Password != "p2" {
		t.Errorf("username/password: got %+v", c)
	}

	got, err = parseSecret(cfgSecret("ns", "b", `{"legacy.example.com":{"auth":"`+b64("lu:lp")+`","email":"a@b"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := got["legacy.example.com"]; c.Username != "lu" || c.Password != "lp" {
		t.Errorf("dockercfg: got %+v", c)
	}

	bad := []*corev1.Secret{
		nil,
		jsonSecret("ns", "c", `not json`),
		{Type: corev1.SecretTypeOpaque},
		{Type: corev1.SecretTypeDockerConfigJson},
	}
	for i, s := range bad {
		if _, err := parseSecret(s); err == nil {
			t.Errorf("bad secret %d: no error", i)
		}
	}
	// One bad entry does not lose the good ones.
	got, err = parseSecret(jsonSecret("ns", "d", `{"auths":{"a.io":{"auth":"!!!"},"b.io":{"username":"u","password":"p"}}}`))
	if err == nil || got["b.io"].Username != "u" {
		t.Errorf("partly bad secret: %v %+v", err, got)
	}
}

func TestKeyringLookupLikeKubelet(t *testing.T) {
	var kr keyring
	kr.add(map[string]authn.AuthConfig{
		"*.registry.example.com":            {Username: "wildcard"},
		"registry.example.com":              {Username: "host"},
		"registry.example.com/team":         {Username: "team"},
		"https://registry.example.com:5000": {Username: "port"},
		"https://index.docker.io/v1/":       {Username: "hub"},
		"http://plain.example.com/v2/":      {Username: "plain"},
		"*.*.nested.example.com":            {Username: "nested"},
		"prefix.example.com/org/sub":        {Username: "deep"},
		"prefix.example.com/org":            {Username: "org"},
	})
	cases := map[string]string{
		"registry.example.com/app":       "host",
		"registry.example.com/team/app":  "team",
		"eu.registry.example.com/app":    "wildcard",
		"a.eu.registry.example.com/app":  "", // '*' is one label only
		"registry.example.com:5000/app":  "port",
		"registry.example.com:5001/app":  "",
		"docker.io/library/nginx":        "hub",
		"plain.example.com/x":            "plain",
		"a.b.nested.example.com/x":       "nested",
		"prefix.example.com/org/sub/app": "deep",
		"prefix.example.com/org/app":     "org",
		"unknown.example.com/app":        "",
		"quay.io/app":                    "",
	}
	for image, want := range cases {
		c, ok := kr.lookup(image)
		if ok != (want != "") || c.Username != want {
			t.Errorf("Lookup(%s) = %q, %t; want %q", image, c.Username, ok, want)
		}
	}
}

func TestKeyringResolve(t *testing.T) {
	var kr keyring
	kr.add(map[string]authn.AuthConfig{"docker.io": {Username: "hub", Password: "x"}, "r.example.com/team": {Username: "team", Password: "y"}})
	for ref, want := range map[string]string{
		"nginx":                     "hub",
		"index.docker.io/org/app":   "hub",
		"r.example.com/team/app:v1": "team",
		"r.example.com/other/app":   "",
	} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kr.Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			if a != authn.Anonymous {
				t.Errorf("%s: want anonymous", ref)
			}
			continue
		}
		ac, err := a.Authorization()
		if err != nil || ac.Username != want {
			t.Errorf("%s: got %+v %v, want %s", ref, ac, err, want)
		}
	}
	var empty *keyring
	if a, _ := empty.Resolve(name.MustParseReference("nginx").Context()); a != authn.Anonymous {
		t.Error("nil keyring is not anonymous")
	}
}

func TestPullSecretsFromInformers(t *testing.T) {
	client := fake.NewClientset(
		jsonSecret("app", "pod-secret", `{"auths":{"pod.example.com":{"username":"pod","password":"p"}}}`),
		cfgSecret("app", "sa-secret", `{"sa.example.com":{"username":"sa","password":"p"}}`),
		jsonSecret("other", "pod-secret", `{"auths":{"pod.example.com":{"username":"wrong-namespace","password":"p"}}}`),
		&corev1.ServiceAccount{
			ObjectMeta:       metav1.ObjectMeta{Namespace: "app", Name: "builder"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "sa-secret"}, {Name: "missing"}},
		},
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := New(client, "", 0, nil)
	p.Start(ctx)
	if err := p.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	kc := p.Keychain("app", []string{"pod-secret"}, "builder")
	if kc == nil {
		t.Fatal("no keychain")
	}
	for ref, want := range map[string]string{"pod.example.com/a": "pod", "sa.example.com/b": "sa"} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		ac, _ := a.Authorization()
		if ac.Username != want {
			t.Errorf("%s: got %q want %q", ref, ac.Username, want)
		}
	}
	if kc := p.Keychain("app", []string{"missing"}, "nobody"); kc != nil {
		t.Errorf("keychain from missing secrets: %v", kc)
	}
	// Secrets created later are seen through the watch.
	_, err := client.CoreV1().Secrets("late").Create(ctx, jsonSecret("late", "s", `{"auths":{"late.example.com":{"username":"late","password":"p"}}}`), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Keychain("late", []string{"s"}, "") == nil {
		if time.Now().After(deadline) {
			t.Fatal("late secret never seen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var nilP *Keychains
	if nilP.Keychain("a", []string{"b"}, "c") != nil {
		t.Error("nil Keychains gave a keychain")
	}
}
