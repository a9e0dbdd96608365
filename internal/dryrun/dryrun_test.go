package dryrun

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// The warning comes at start and again every interval, until ctx ends.
func TestWarnRepeats(t *testing.T) {
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Warn(ctx, slog.New(slog.NewTextHandler(&logs, nil)), 20*time.Millisecond); close(done) }()
	time.Sleep(150 * time.Millisecond)
	cancel()
	<-done
	if n := strings.Count(logs.String(), "neither copied nor rewritten"); n < 3 {
		t.Errorf("dry run said %d times in 150ms at a 20ms interval:\n%s", n, logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
