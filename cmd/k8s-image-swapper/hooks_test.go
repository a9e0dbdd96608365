package main

import (
	"strings"
	"testing"
	"time"
)

func TestSleepCommand(t *testing.T) {
	start := time.Now()
	if out, err := run(t, "sleep", "50ms"); err != nil {
		t.Fatalf("sleep 50ms: %v\n%s", err, out)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("sleep 50ms returned after %s", d)
	}
	if _, err := run(t, "sleep", "soon"); exitCode(err) != 2 {
		t.Errorf("sleep soon: exit %d (%v), want 2", exitCode(err), err)
	}
}

func TestWaitDaemonSetNeedsAName(t *testing.T) {
	if _, err := run(t, "wait-daemonset"); err == nil || !strings.Contains(err.Error(), "arg") {
		t.Errorf("wait-daemonset without a name: %v", err)
	}
}
