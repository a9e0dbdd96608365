package mirror

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
)

// basicRegistry is an in-process registry that wants user:pass and notes
// every user that tried.
type basicRegistry struct {
	addr  string
	Close func() // stops it (an outage)
	mu    sync.Mutex
	seen  []string
}

func startBasicRegistry(t *testing.T, user, pass string) *basicRegistry {
	t.Helper()
	b := &basicRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if ok {
			b.mu.Lock()
			if !slices.Contains(b.seen, u) {
				b.seen = append(b.seen, u)
			}
			b.mu.Unlock()
		}
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	b.addr, b.Close = strings.TrimPrefix(srv.URL, "http://"), srv.Close
	return b
}

func (b *basicRegistry) users() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.seen)
}

// basicKeychain gives the same credentials for every registry.
type basicKeychain struct{ user, pass string }

func (k basicKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.pass}, nil
}

// Two callers share one copy; the source refuses the first one's
// credentials, and the copy is tried again with the second one's.
func TestSharedCopyTriesEachCallersCredentials(t *testing.T) {
	src := startBasicRegistry(t, "good", "s3cret")
	dst := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(dst.Close)
	ref0 := src.addr + "/team/private:v1"
	img := images.Image(t, 1024, 1, "linux/amd64")
	if err := remote.Write(mustName(t, ref0), img, remote.WithAuth(&authn.Basic{Username: "good", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	src.seen = nil // the push's
	src.mu.Unlock()
	tgt, err := target.NewGeneric(target.GenericSpec{Registry: strings.TrimPrefix(dst.URL, "http://"), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	eng := New(tgt, Options{Sources: insecureSources(t, src.addr), Retries: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(eng.Close)
	s := ref(t, ref0)

	// Not started yet: both requests are queued as one job before it runs.
	first, err := eng.Submit(Request{Source: s, Keychain: basicKeychain{"bad", "wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	second, err := eng.Submit(Request{Source: s, Keychain: basicKeychain{"good", "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatal("the two requests did not share one copy")
	}
	eng.Start(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := second.Wait(ctx)
	if err != nil {
		t.Fatalf("the copy failed although the second caller's credentials read the image: %v (source saw %v)", err, src.users())
	}
	want, _ := img.Digest()
	if res.Digest != want {
		t.Errorf("copied %s, want %s", res.Digest, want)
	}
	if got := src.users(); !slices.Equal(got, []string{"bad", "good"}) {
		t.Errorf("source saw users %v, want [bad good]", got)
	}
	if ok, err := eng.Exists(ctx, s); err != nil || !ok {
		t.Errorf("target lacks the copy: %v %v", ok, err)
	}
}

func mustName(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
