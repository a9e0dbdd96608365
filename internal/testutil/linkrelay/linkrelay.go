// Package linkrelay makes a long, narrow link in user space for tests and benchmarks:
// a TCP relay with a delay and a shared rate each way.
package linkrelay

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Relay is a TCP relay that behaves like a long link to a remote registry: every byte
// arrives delay later in each direction (so a round trip costs 2 x delay more), and all the
// connections together get at most rate bytes a second each way. netem is not available in
// this kernel, so the link is made in user space; TCP on both sides is real.
type Relay struct {
	Addr    string
	backend string
	delay   time.Duration
	up      *pacer // client -> backend
	down    *pacer // backend -> client
	l       net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

// Start listens on addr (host:port) in front of backend until the test ends.
func Start(t testing.TB, addr, backend string, rate int64, delay time.Duration) *Relay {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{Addr: l.Addr().String(), backend: backend, delay: delay, up: &pacer{rate: rate}, down: &pacer{rate: rate}, l: l}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.Close)
	return r
}

func (r *Relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", r.backend)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, b)
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			var both sync.WaitGroup
			both.Add(2)
			go func() { defer both.Done(); r.pipe(b, c, r.up) }()
			go func() { defer both.Done(); r.pipe(c, b, r.down) }()
			both.Wait()
			c.Close()
			b.Close()
		}()
	}
}

// Close stops the relay and its connections.
func (r *Relay) Close() {
	r.l.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// chunk is data read from one side, due at the other side at due.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst through a delay line: a reader stamps each chunk with its due time,
// a writer waits for it and for the pacer. The line holds about 4 MiB, well above what a
// 50 MB/s link keeps in flight in 20 ms, so the delay does not cap throughput; beyond
// that the reader waits (TCP back-pressure, as on a real link).
func (r *Relay) pipe(dst, src net.Conn, p *pacer) {
	line := make(chan chunk, 128)
	go func() {
		defer close(line)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				line <- chunk{data: buf[:n], due: time.Now().Add(r.delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range line {
		time.Sleep(time.Until(c.due))
		time.Sleep(time.Until(p.reserve(len(c.data))))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	// Half-close so the other side sees the end, as TCP would.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	for range line {
	}
	_, _ = io.Copy(io.Discard, src)
}

// pacer spreads writes so that together they stay within rate bytes a second.
type pacer struct {
	mu   sync.Mutex
	rate int64
	next time.Time
}

// reserve books n bytes and says when they may be sent.
func (p *pacer) reserve(n int) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(int64(n) * int64(time.Second) / p.rate))
	return at
}
