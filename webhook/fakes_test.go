package webhook

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

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
