//go:build e2e

package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// lockNode makes the node tests of this machine take turns (across worktrees and
// processes): each runs kube-proxy in the host's network namespace, whose iptables rules
// for the Service range would clash, and checks afterwards that iptables is as it found it.
// The lock is released when the test ends, after everything else has stopped.
func lockNode(ctx context.Context, t testing.TB) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "k8s-image-swapper-e2e-node.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Fatalf("lock %s: %v", path, err)
		}
		if !logged {
			t.Logf("waiting for another node test on this machine (%s)", path)
			logged = true
		}
		select {
		case <-ctx.Done():
			t.Fatalf("another node test held %s until the deadline", path)
		case <-time.After(time.Second):
		}
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
