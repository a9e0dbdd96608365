package ttlcache

import (
	"testing"
	"time"
)

func newAt(max int, now *time.Time) *Cache[string, int] {
	c := New[string, int](max)
	c.now = func() time.Time { return *now }
	return c
}

func TestExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newAt(10, &now)
	c.Set("a", 1, time.Minute)
	c.Set("forever", 2, 0)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get a = %d %v", v, ok)
	}
	if c.Add("a", 3, time.Minute) {
		t.Fatal("Add replaced a live entry")
	}
	now = now.Add(time.Minute)
	if _, ok := c.Get("a"); ok {
		t.Fatal("an expired entry was returned")
	}
	if !c.Add("a", 3, time.Minute) {
		t.Fatal("Add did not replace an expired entry")
	}
	if v, ok := c.Get("forever"); !ok || v != 2 {
		t.Fatalf("an entry without a TTL expired: %d %v", v, ok)
	}
	c.Delete("a")
	if _, ok := c.Get("a"); ok {
		t.Fatal("Delete kept the entry")
	}
}

func TestBound(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newAt(8, &now)
	for i := range 4 {
		c.Set(string(rune('a'+i)), i, time.Second)
	}
	now = now.Add(time.Second) // a-d expire
	for i := range 4 {
		c.Set(string(rune('e'+i)), i, time.Minute)
	}
	c.Set("i", 8, time.Minute) // full: the expired ones go, the live ones stay
	if len(c.entries) != 5 {
		t.Fatalf("after evicting the expired: %d entries, want 5", len(c.entries))
	}
	for i := range 3 {
		c.Set(string(rune('j'+i)), i, time.Minute)
	}
	c.Set("z", 9, time.Minute) // full of live entries: all go
	if len(c.entries) != 1 {
		t.Fatalf("a cache full of live entries holds %d after a set, want 1", len(c.entries))
	}
	c.Set("z", 10, time.Minute) // replacing an entry never evicts
	if v, _ := c.Get("z"); v != 10 || len(c.entries) != 1 {
		t.Fatalf("z = %d, %d entries", v, len(c.entries))
	}
}
