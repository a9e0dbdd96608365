package webhook

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	dto "github.com/prometheus/client_model/go"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
)

// secretKeychains gives each named secret's keychain, nil for a pod with
// none, as pullsecrets.Keychains does.
type secretKeychains struct {
	mu      sync.Mutex
	secrets map[string]authn.Keychain
	calls   int
}

func (s *secretKeychains) Keychain(_ string, names []string, _ string) authn.Keychain {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	for _, n := range names {
		if kc, ok := s.secrets[n]; ok {
			return kc
		}
	}
	return nil
}

type namedKeychain string

func (namedKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}

// withSecret is a pod review whose pod names the pull secret.
func withSecret(t *testing.T, body []byte, secret string) []byte {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	spec := r["request"].(map[string]any)["object"].(map[string]any)["spec"].(map[string]any)
	spec["imagePullSecrets"] = []any{map[string]any{"name": secret}}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keptPrivate() float64 {
	var m dto.Metric
	if err := metrics.ImageDecisions.WithLabelValues(decisionKeptPrivate).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func TestPrivateImages(t *testing.T) {
	const private, public = "registry.example.com/team/private:v1", "docker.io/library/nginx:1.27"
	good, bad := namedKeychain("good"), namedKeychain("bad")
	setup := func(t *testing.T, edit func(*Options)) (*Handler, *fakeAccess, *secretKeychains) {
		fa := &fakeAccess{private: map[string]bool{"registry.example.com/team/private": true},
			readers: map[authn.Keychain]bool{good: true}}
		ks := &secretKeychains{secrets: map[string]authn.Keychain{"regcred": good, "other": bad}}
		h, _ := newTestHandler(t, []string{private, public}, func(o *Options) {
			o.Access, o.PullSecrets = fa, ks
			if edit != nil {
				edit(o)
			}
		})
		return h, fa, ks
	}
	target := func(t *testing.T, h *Handler, img string) string {
		src, err := imageref.Parse(img)
		if err != nil {
			t.Fatal(err)
		}
		tgt, err := h.o.Mapper.ToTarget(src)
		if err != nil {
			t.Fatal(err)
		}
		return tgt.String()
	}

	t.Run("private, the pod's secret reads it: swapped", func(t *testing.T) {
		h, fa, _ := setup(t, nil)
		got := containerImages(t, h, withSecret(t, podReview(t, "a", private), "regcred"))
		if want := target(t, h, private); got[0] != want {
			t.Fatalf("image %q, want %q", got[0], want)
		}
		if fa.readables != 1 {
			t.Errorf("%d credential checks, want 1", fa.readables)
		}
	})

	t.Run("private, no secret: kept and counted", func(t *testing.T) {
		h, _, _ := setup(t, nil)
		before := keptPrivate()
		if got := containerImages(t, h, podReview(t, "b", private)); got[0] != private {
			t.Fatalf("image %q, want the original %q", got[0], private)
		}
		if d := keptPrivate() - before; d != 1 {
			t.Errorf("kept_private rose by %v, want 1", d)
		}
	})

	t.Run("private, a secret the source refuses: kept", func(t *testing.T) {
		h, _, _ := setup(t, nil)
		before := keptPrivate()
		if got := containerImages(t, h, withSecret(t, podReview(t, "b", private), "other")); got[0] != private {
			t.Fatalf("image %q, want the original %q", got[0], private)
		}
		if d := keptPrivate() - before; d != 1 {
			t.Errorf("kept_private rose by %v, want 1", d)
		}
	})

	t.Run("public: swapped, no credential check", func(t *testing.T) {
		h, fa, ks := setup(t, nil)
		got := containerImages(t, h, podReview(t, "b", public))
		if want := target(t, h, public); got[0] != want {
			t.Fatalf("image %q, want %q", got[0], want)
		}
		if fa.readables != 0 || ks.calls != 0 {
			t.Errorf("a public image was checked with the pod's credentials (%d checks, %d keychains)", fa.readables, ks.calls)
		}
	})

	t.Run("privateImages swap: swapped for every pod, nothing asked", func(t *testing.T) {
		h, fa, _ := setup(t, func(o *Options) { o.PrivateImages = policy.PrivateImagesSwap })
		got := containerImages(t, h, podReview(t, "b", private))
		if want := target(t, h, private); got[0] != want {
			t.Fatalf("image %q, want %q", got[0], want)
		}
		if fa.publics+fa.readables != 0 {
			t.Errorf("the source was asked %d times", fa.publics+fa.readables)
		}
	})

	t.Run("source cannot be asked: kept, even with a secret", func(t *testing.T) {
		h, fa, _ := setup(t, nil)
		fa.err = errors.New("dial tcp: connection refused")
		before := keptPrivate()
		for _, img := range []string{private, public} {
			if got := containerImages(t, h, withSecret(t, podReview(t, "a", img), "regcred")); got[0] != img {
				t.Fatalf("image %q, want the original %q", got[0], img)
			}
		}
		if d := keptPrivate() - before; d != 2 {
			t.Errorf("kept_private rose by %v, want 2", d)
		}
	})

	t.Run("dry run: counted as dry_run, nothing patched", func(t *testing.T) {
		h, fa, _ := setup(t, func(o *Options) { o.DryRun = true })
		before := keptPrivate()
		if got := containerImages(t, h, podReview(t, "b", private)); got[0] != private {
			t.Fatalf("image %q, want the original %q", got[0], private)
		}
		if d := keptPrivate() - before; d != 0 || fa.publics != 1 {
			t.Errorf("dry run: kept_private rose by %v, source asked %d times", d, fa.publics)
		}
	})

	t.Run("no way to ask: refused at start", func(t *testing.T) {
		m, _ := imageref.NewMapper(testTarget)
		if _, err := New(Options{Mirror: &fakeMirror{}, Mapper: m}); err == nil {
			t.Fatal("privateImages check without Access was accepted")
		}
	})
}
