// Package progress shows how image copies advance, as `copy` prints them: on
// a terminal one line per image that redraws itself (bytes done of total,
// rate), elsewhere a plain line now and then, and a summary at the end.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Printer writes the progress of one copy at a time, and the summary.
type Printer struct {
	w     io.Writer
	tty   bool
	every time.Duration // between two lines of one image
	now   func() time.Time

	mu      sync.Mutex
	start   time.Time
	counts  map[string]int // by outcome
	written int64
}

// New writes to w, redrawing lines when tty (w is a terminal).
func New(w io.Writer, tty bool) *Printer {
	every := 5 * time.Second
	if tty {
		every = 100 * time.Millisecond
	}
	return &Printer{w: w, tty: tty, every: every, now: time.Now, counts: map[string]int{}}
}

// Image is one image's copy being shown.
type Image struct {
	p     *Printer
	name  string
	start time.Time

	mu              sync.Mutex
	last            time.Time // when a line was last written
	complete, total int64
}

// Start shows that name's copy begins.
func (p *Printer) Start(name string) *Image {
	p.mu.Lock()
	if p.start.IsZero() {
		p.start = p.now()
	}
	p.mu.Unlock()
	im := &Image{p: p, name: name, start: p.now()}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: copying\n", name)
	}
	return im
}

// Update is the engine's count of bytes written (mirror.Request.Progress).
func (im *Image) Update(complete, total int64) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.complete, im.total = complete, total
	now := im.p.now()
	if now.Sub(im.last) < im.p.every {
		return
	}
	im.last = now
	im.line(now, "")
}

// line writes the image's state: redrawn in place on a terminal.
func (im *Image) line(now time.Time, end string) {
	rate := ""
	if secs := now.Sub(im.start).Seconds(); secs > 0 && im.complete > 0 {
		rate = fmt.Sprintf(", %s/s", size(int64(float64(im.complete)/secs)))
	}
	done := size(im.complete)
	if im.total > 0 {
		done = fmt.Sprintf("%s of %s (%d%%)", size(im.complete), size(im.total), im.complete*100/im.total)
	}
	if im.p.tty {
		fmt.Fprintf(im.p.w, "\r\033[K%s: %s%s%s", im.name, done, rate, end)
		return
	}
	fmt.Fprintf(im.p.w, "%s: %s%s%s\n", im.name, done, rate, end)
}

// Done ends the image's line with its outcome: copied, already present, or err.
func (im *Image) Done(present bool, err error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	p := im.p
	now := p.now()
	outcome := "copied"
	switch {
	case err != nil:
		outcome = "failed"
	case present:
		outcome = "present"
	case im.total > 0:
		// Written whole: the library's last count can stop short of its total.
		im.complete = im.total
	}
	p.mu.Lock()
	p.counts[outcome]++
	p.written += im.complete
	p.mu.Unlock()
	took := now.Sub(im.start).Round(10 * time.Millisecond)
	switch outcome {
	case "failed":
		im.end(fmt.Sprintf("%s: failed after %s: %v", im.name, took, err))
	case "present":
		im.end(fmt.Sprintf("%s: already in the target (%s)", im.name, took))
	default:
		im.line(now, fmt.Sprintf(", copied in %s", took))
		if p.tty {
			fmt.Fprintln(p.w)
		}
	}
}

func (im *Image) end(msg string) {
	if im.p.tty {
		fmt.Fprintf(im.p.w, "\r\033[K%s\n", msg)
		return
	}
	fmt.Fprintln(im.p.w, msg)
}

// Summary writes one line for every image shown.
func (p *Printer) Summary() {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.counts["copied"] + p.counts["present"] + p.counts["failed"]
	if n == 0 {
		return
	}
	took := p.now().Sub(p.start).Round(10 * time.Millisecond)
	fmt.Fprintf(p.w, "%d image(s): %d copied, %d already present, %d failed; %s written in %s\n",
		n, p.counts["copied"], p.counts["present"], p.counts["failed"], size(p.written), took)
}

// size is n bytes in binary units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	d, e := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		d *= unit
		e++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(d), "KMGTPE"[e])
}
