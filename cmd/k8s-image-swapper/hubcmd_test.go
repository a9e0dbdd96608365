//go:build !nodeproxy

package main

import (
	"errors"
	"strings"
	"testing"
)

// --api-callers names ServiceAccounts as the API server does; anything
// else stops the hub before it listens, with the value named (exit 2):
// a typo must not leave the webhook refused, or the API open.
func TestHubCallersFlag(t *testing.T) {
	for _, bad := range []string{"webhook", "system:serviceaccount:swapper", "system:serviceaccount::webhook",
		"system:serviceaccount:swapper:", "system:serviceaccount:a:b:c", "system:node:n1"} {
		_, err := run(t, "hub", "--api-callers", bad, "--listen-address", "127.0.0.1:0", "--log-level", "error")
		var e *exitError
		if !errors.As(err, &e) || e.code != 2 || !strings.Contains(err.Error(), bad) {
			t.Errorf("--api-callers %q: %v, want exit 2 naming it", bad, err)
		}
	}
}
