package peers

import (
	"fmt"
	"testing"
)

// Every repository has one owner among the replicas, the same whichever
// replica asks, and a replica that joins takes about its share, moving
// nothing between the others.
func TestOwners(t *testing.T) {
	addrs := []string{"10.0.0.1:7440", "10.0.0.2:7440", "10.0.0.3:7440"}
	sets := []*Set{New(addrs[0], addrs), New(addrs[1], addrs), New(addrs[2], addrs[:1])}
	sets[2].Update(addrs)
	before := map[string]string{}
	owned := map[string]int{}
	for i := range 3000 {
		key := fmt.Sprintf("docker.io/library/app%d", i)
		a, self0 := sets[0].Owner(key)
		b, self1 := sets[1].Owner(key)
		c, self2 := sets[2].Owner(key)
		if a != b || b != c {
			t.Fatalf("%s: owners %s %s %s", key, a, b, c)
		}
		if n := btoi(self0) + btoi(self1) + btoi(self2); n != 1 {
			t.Fatalf("%s: %d replicas say they own it", key, n)
		}
		before[key] = a
		owned[a]++
	}
	for a, n := range owned {
		if n < 800 || n > 1200 {
			t.Errorf("%s owns %d of 3000", a, n)
		}
	}
	grown := New(addrs[0], append(addrs, "10.0.0.4:7440"))
	moved := 0
	for key, was := range before {
		now, _ := grown.Owner(key)
		if now != was {
			if now != "10.0.0.4:7440" {
				t.Fatalf("%s moved from %s to %s, not to the new replica", key, was, now)
			}
			moved++
		}
	}
	if moved < 550 || moved > 950 {
		t.Errorf("%d of 3000 moved to the fourth replica, want about 750", moved)
	}
	if got := New("10.0.0.9:7440", nil).Addrs(); len(got) != 1 || got[0] != "10.0.0.9:7440" {
		t.Errorf("a set without peers is itself: %v", got)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Ready endpoints on the named port count; not ready, terminating and other ports do not.
