package webhook

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
)

// fakeAccess stands in for the sources' answers on who may read an image:
// repositories in private need credentials, which readers hold; err is
// every answer when set.
type fakeAccess struct {
	mu        sync.Mutex
	private   map[string]bool // repository -> needs credentials
	readers   map[authn.Keychain]bool
	err       error
	publics   int // questions asked
	readables int
}

func (f *fakeAccess) Public(_ context.Context, src reference.Named) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publics++
	if f.err != nil {
		return false, f.err
	}
	return !f.private[src.Name()], nil
}

func (f *fakeAccess) Readable(_ context.Context, _ reference.Named, kc authn.Keychain) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readables++
	if f.err != nil {
		return false, f.err
	}
	return f.readers[kc], nil
}

type fakeKeychains struct {
	mu    sync.Mutex
	calls int
	last  string
}

func (f *fakeKeychains) Keychain(namespace string, secrets []string, serviceAccount string) authn.Keychain {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.last = fmt.Sprintf("%s %v %s", namespace, secrets, serviceAccount)
	return authn.DefaultKeychain
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
