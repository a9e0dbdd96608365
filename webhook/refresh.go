package webhook

import (
	"sync"
	"time"
)

// refreshTimes remembers when each tag was last resolved at the source for
// an imagePullPolicy: Always container, so that is done at most once per ttl.
type refreshTimes struct {
	ttl  time.Duration
	mu   sync.Mutex
	last map[string]time.Time
}

func newRefreshTimes(ttl time.Duration) *refreshTimes {
	return &refreshTimes{ttl: ttl, last: map[string]time.Time{}}
}

// due tells whether ref is due, and if so counts it as done now.
func (r *refreshTimes) due(ref string) bool {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[ref]; ok && now.Sub(t) < r.ttl {
		return false
	}
	if len(r.last) > 100_000 {
		for k, t := range r.last {
			if now.Sub(t) >= r.ttl {
				delete(r.last, k)
			}
		}
	}
	r.last[ref] = now
	return true
}
