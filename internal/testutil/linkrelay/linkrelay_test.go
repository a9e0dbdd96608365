package linkrelay

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// TestLinkRelay: the relay delays a round trip by twice its delay and holds a transfer to
// its rate (the bounds are loose: they check the link is shaped at all, not how fast this
// machine is).
func TestLinkRelay(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const size = 8 << 20
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				if _, err := io.ReadFull(c, b); err != nil {
					return
				}
				if b[0] == 'p' {
					_, _ = c.Write([]byte("p"))
					return
				}
				_, _ = c.Write(make([]byte, size))
			}()
		}
	}()
	r := Start(t, registryproc.FreeAddr(t), l.Addr().String(), 16<<20, 25*time.Millisecond)
	dial := func(what byte) (time.Duration, int64) {
		c, err := net.Dial("tcp", r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if _, err := c.Write([]byte{what}); err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			t.Fatal(err)
		}
		return time.Since(start), n
	}
	if d, n := dial('p'); n != 1 || d < 50*time.Millisecond {
		t.Errorf("a round trip took %s (%d bytes), want at least 2 x 25ms", d, n)
	}
	// 8 MiB at 16 MiB/s: at least half a second.
	if d, n := dial('b'); n != size || d < 450*time.Millisecond {
		t.Errorf("8 MiB came through in %s (%d bytes), faster than 16 MiB/s", d, n)
	}
}
