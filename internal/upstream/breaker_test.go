package upstream

import (
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	now := time.Unix(1000, 0)
	b := &breaker{now: func() time.Time { return now }}
	if !b.allow() {
		t.Fatal("a new breaker refused")
	}
	b.result(false)
	if !b.allow() {
		t.Fatal("refused after a success")
	}
	b.result(true) // the upstream hung
	if b.allow() {
		t.Fatal("allowed right after a failure")
	}
	now = now.Add(breakerCooldown + time.Millisecond)
	if !b.allow() {
		t.Fatal("no probe after the cool-down")
	}
	if b.allow() {
		t.Fatal("a second request went out while the probe is in flight")
	}
	b.result(true) // the probe failed: closed again for a cool-down
	if b.allow() {
		t.Fatal("allowed after a failed probe")
	}
	now = now.Add(breakerCooldown + time.Millisecond)
	if !b.allow() {
		t.Fatal("no second probe")
	}
	b.result(false) // the upstream is back
	for i := 0; i < 3; i++ {
		if !b.allow() {
			t.Fatal("refused after a successful probe")
		}
		b.result(false)
	}
}
