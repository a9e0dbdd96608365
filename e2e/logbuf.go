//go:build e2e

package e2e

import (
	"bytes"
	"sync"
)

// syncLog collects a process's output: the process writes while the test
// reads. Embedded, it makes its holder the process's Stdout and Stderr.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

// String is everything written so far.
func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
