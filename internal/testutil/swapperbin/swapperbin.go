// Package swapperbin finds the k8s-image-swapper binary for tests that run
// it as a process: $K8S_IMAGE_SWAPPER_BIN (make builds it), else one build
// per test process.
package swapperbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Env names the binary to use instead of building one.
const Env = "K8S_IMAGE_SWAPPER_BIN"

var (
	once sync.Once
	dir  string
	path string
	err  error
)

// Path returns the binary, building it on first use when Env is unset.
func Path(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(Env); p != "" {
		return p
	}
	once.Do(func() {
		if dir, err = os.MkdirTemp("", "k8s-image-swapper-bin-"); err != nil {
			return
		}
		path = filepath.Join(dir, "k8s-image-swapper")
		// By import path: it builds from any directory of the module.
		cmd := exec.Command("go", "build", "-o", path, "github.com/k8s-image-swapper/k8s-image-swapper/cmd/k8s-image-swapper")
		if out, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("go build: %v\n%s", e, out)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

// Remove deletes a binary Path built; TestMain calls it after the tests.
func Remove() {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}
