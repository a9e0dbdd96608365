package upstream

import (
	"sync"
	"time"
)

// breakerCooldown is how long an upstream that hung or refused is skipped
// before one request probes it again.
const breakerCooldown = 10 * time.Second

// breaker stops sending requests to an upstream that stopped answering. A
// hung target would otherwise cost every manifest and blob request the full
// upstream timeout before the source serves it; with the breaker open, they
// go to the source at once. Only transport failures and timeouts count:
// an HTTP answer, even an error, shows the upstream is there.
type breaker struct {
	mu        sync.Mutex
	openUntil time.Time
	probing   bool
	now       func() time.Time
}

// allow tells whether a request may go out: always while closed; while
// open, none until the cool-down ends, then a single probe.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return true
	}
	if b.clock().Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true
	return true
}

// result records how a request that was allowed went.
func (b *breaker) result(failed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if failed {
		b.openUntil = b.clock().Add(breakerCooldown)
		return
	}
	b.openUntil = time.Time{}
}

func (b *breaker) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}
