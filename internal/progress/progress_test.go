package progress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// clock is a time that moves only when told.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newPrinter(tty bool) (*Printer, *bytes.Buffer, *clock) {
	var b bytes.Buffer
	c := &clock{t: time.Unix(1e9, 0)}
	p := New(&b, tty)
	p.now = c.now
	return p, &b, c
}

// Not on a terminal: a line when a copy starts, one at most every 5s while it writes (bytes
// of total, percent, rate), one when it ends, and the summary.
func TestPlain(t *testing.T) {
	p, out, c := newPrinter(false)
	im := p.Start("docker.io/library/nginx:1.27")
	c.add(time.Second)
	im.Update(1<<20, 4<<20) // the first update is shown
	c.add(time.Second)
	im.Update(2<<20, 4<<20) // within 5s of the last line: not shown
	c.add(5 * time.Second)
	im.Update(3<<20, 4<<20)
	c.add(time.Second)
	im.Update(4<<20, 4<<20)
	im.Done(false, nil)
	p.Start("quay.io/a/b:1").Done(true, nil)
	p.Start("ghcr.io/c/d:2").Done(false, errors.New("source answered 404"))
	p.Summary()
	want := `docker.io/library/nginx:1.27: copying
docker.io/library/nginx:1.27: 1.0 MiB of 4.0 MiB (25%), 1.0 MiB/s
docker.io/library/nginx:1.27: 3.0 MiB of 4.0 MiB (75%), 438.9 KiB/s
docker.io/library/nginx:1.27: 4.0 MiB of 4.0 MiB (100%), 512.0 KiB/s, copied in 8s
quay.io/a/b:1: copying
quay.io/a/b:1: already in the target (0s)
ghcr.io/c/d:2: copying
ghcr.io/c/d:2: failed after 0s: source answered 404
3 image(s): 1 copied, 1 already present, 1 failed; 4.0 MiB written in 8s
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

// On a terminal the image's line is redrawn in place (carriage return, erase line) and ends
// with a newline when the copy does.
func TestTerminal(t *testing.T) {
	p, out, c := newPrinter(true)
	im := p.Start("nginx")
	for i := int64(1); i <= 4; i++ {
		c.add(200 * time.Millisecond)
		im.Update(i<<20, 4<<20)
	}
	im.Done(false, nil)
	p.Summary()
	lines := strings.Split(out.String(), "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("want the image's line and the summary, got %q", out.String())
	}
	if n := strings.Count(lines[0], "\r\033[K"); n != 5 {
		t.Errorf("the line was drawn %d times, want 5 (4 updates and the end): %q", n, lines[0])
	}
	if !strings.HasSuffix(lines[0], "\r\033[Knginx: 4.0 MiB of 4.0 MiB (100%), 5.0 MiB/s, copied in 800ms") {
		t.Errorf("last drawing %q", lines[0])
	}
	if lines[1] != "1 image(s): 1 copied, 0 already present, 0 failed; 4.0 MiB written in 800ms" {
		t.Errorf("summary %q", lines[1])
	}
}
