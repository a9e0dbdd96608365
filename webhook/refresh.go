package webhook

import (
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// refreshTimes remembers which tags were resolved at the source for an
// imagePullPolicy: Always container in the last ttl, so that is done at
// most once per ttl.
type refreshTimes struct {
	ttl  time.Duration
	done *ttlcache.Cache[string, struct{}]
}

func newRefreshTimes(ttl time.Duration) *refreshTimes {
	return &refreshTimes{ttl: ttl, done: ttlcache.New[string, struct{}](100_000)}
}

// due tells whether ref is due, and if so counts it as done now.
func (r *refreshTimes) due(ref string) bool { return r.done.Add(ref, struct{}{}, r.ttl) }
