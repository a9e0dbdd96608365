package mirror

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

func TestAccess(t *testing.T) {
	priv := startBasicRegistry(t, "good", "s3cret")
	pub := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(pub.Close)
	pubAddr := strings.TrimPrefix(pub.URL, "http://")
	img := images.Image(t, 512, 1, "linux/amd64")
	if err := remote.Write(mustName(t, priv.addr+"/team/private:v1"), img, remote.WithAuth(&authn.Basic{Username: "good", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	images.Push(t, pubAddr+"/team/public:v1", img)
	a := NewAccess(insecureSources(t, priv.addr, pubAddr), nil)
	ctx := context.Background()

	if ok, err := a.Public(ctx, ref(t, pubAddr+"/team/public:v1")); err != nil || !ok {
		t.Errorf("public image: public %v, %v", ok, err)
	}
	privRef := ref(t, priv.addr+"/team/private:v1")
	if ok, err := a.Public(ctx, privRef); err != nil || ok {
		t.Errorf("private image: public %v, %v; want false, nil (a 401 is an answer)", ok, err)
	}
	for _, c := range []struct {
		kc   authn.Keychain
		want bool
	}{{basicKeychain{"good", "s3cret"}, true}, {basicKeychain{"bad", "wrong"}, false}, {nil, false}} {
		if ok, err := a.Readable(ctx, privRef, c.kc); err != nil || ok != c.want {
			t.Errorf("readable with %v: %v, %v; want %v", c.kc, ok, err, c.want)
		}
	}
	// The answers are kept: asked again, the source sees nothing new.
	before := len(priv.users())
	priv.mu.Lock()
	priv.seen = nil
	priv.mu.Unlock()
	if ok, _ := a.Readable(ctx, privRef, basicKeychain{"good", "s3cret"}); !ok || len(priv.users()) != 0 {
		t.Errorf("second question: %v, source saw %v (before: %d users)", ok, priv.users(), before)
	}
	// An image the source does not have is nobody's secret: the swap policy decides.
	if ok, err := a.Public(ctx, ref(t, pubAddr+"/team/absent:v1")); err != nil || !ok {
		t.Errorf("absent image: public %v, %v; want true, nil", ok, err)
	}
	// No answer is an error, never a "public".
	gone := NewAccess(insecureSources(t, "127.0.0.1:1"), nil)
	if ok, err := gone.Public(ctx, ref(t, "127.0.0.1:1/team/x:v1")); err == nil || ok {
		t.Errorf("unreachable source: public %v, %v; want an error", ok, err)
	}

	// Through an outage the last answers stand: the public image stays
	// public, the private one private, the pod's grant granted.
	a.public.Delete(pubAddr + "/team/public")
	a.public.Delete(priv.addr + "/team/private")
	a.grants = ttlcache.New[string, bool](maxAccess)
	pub.Close()
	priv.Close()
	if ok, err := a.Public(ctx, ref(t, pubAddr+"/team/public:v1")); err != nil || !ok {
		t.Errorf("public image, source down: public %v, %v; want the last answer, true", ok, err)
	}
	if ok, err := a.Public(ctx, privRef); err != nil || ok {
		t.Errorf("private image, source down: public %v, %v; want the last answer, false", ok, err)
	}
	if ok, err := a.Readable(ctx, privRef, basicKeychain{"good", "s3cret"}); err != nil || !ok {
		t.Errorf("readable, source down: %v, %v; want the last answer, true", ok, err)
	}
	if ok, err := a.Readable(ctx, privRef, basicKeychain{"other", "x"}); err == nil || ok {
		t.Errorf("readable with credentials never asked of, source down: %v, %v; want an error", ok, err)
	}
}
