package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

// ErrDigestMismatch ends every transfer of content whose bytes are not what
// its digest says.
var ErrDigestMismatch = errors.New("digest mismatch: the source sent other bytes than the digest names")

// ErrSpool marks the spool's own failures (as opposed to the source's): a
// blob can still be streamed from the source, unshared.
var ErrSpool = errors.New("spool")

// spool keeps blobs fetched from sources while they stream: small ones in
// memory, the rest on disk. Every request for a blob in flight reads the
// one fetch as it grows, each at its own pace, so one slow client holds
// back no other. A finished blob stays for retain, so that the copy into
// the target (and any late puller) reuses it instead of asking the source
// again.
type spool struct {
	dir      string
	retain   time.Duration
	maxBytes int64 // bound on finished blobs kept; blobs in flight always stay
	log      *slog.Logger

	mu    sync.Mutex
	blobs map[string]*Blob
	// brokenUntil stops new spooling for a while after a write failed (a
	// full disk): blobs then stream straight through, unshared.
	brokenUntil time.Time

	// lastPull is when a pull last read from the spool (Unix ns), and
	// sending counts the pulls in a send (SendTo, where one write may take
	// long): copies into the target read only while pulls are quiet (see
	// giveWay).
	lastPull atomic.Int64
	sending  atomic.Int64

	memUsed atomic.Int64 // bytes of the blobs held in memory
}

// A blob of at most smallBlob bytes (as the source says) is held in memory
// while the ones held take at most memBudget: most layers of most images
// are small, and a file created, written, read and removed per blob cost
// more than its bytes (with one each, a cold pull of 48 layers of 64 KiB
// took 2.4 times as long through the proxy as straight from the source).
const (
	smallBlob = 1 << 20
	memBudget = 16 << 20
	memGrace  = 30 * time.Second // a finished blob in memory not yet copied is kept at least this long
)

// A copy reading the spool gives way to pulls: it waits while a pull read
// within pullQuiet, up to maxYield in all per blob, so a pull streams at
// full speed and the copy follows behind it from the spool, never starved.
const (
	pullQuiet = 20 * time.Millisecond
	maxYield  = 10 * time.Second
)

// spoolPause is how long a failed spool write stops spooling.
const spoolPause = time.Minute

// Blob is one blob being fetched or recently fetched, read with Reader and
// let go of with Release.
type Blob struct {
	spool *spool
	key   string
	dgst  digest.Digest
	// Where the bytes are, set before ready is closed: mem for a small
	// blob, else the file at path.
	mem   []byte
	path  string
	file  *os.File
	ready chan struct{} // closed once the source answered (size known) or failed

	mu       sync.Mutex
	size     int64  // -1 when the source did not say
	relay    string // the relay that answered, "" for the source
	written  int64
	done     bool
	err      error
	wake     chan struct{} // closed and replaced on every change
	readers  int
	finished time.Time
	gone     bool // dropped from the spool; the file goes with the last reader
	copied   bool // a copy into the target read it to the end
}

func newSpool(dir string, retain time.Duration, maxBytes int64, log *slog.Logger) *spool {
	return &spool{dir: dir, retain: retain, maxBytes: maxBytes, log: log, blobs: map[string]*Blob{}}
}

// fetchFunc gets a blob's bytes from offset off on (0: all of it), and
// names the relay that answered ("": the source).
type fetchFunc func(ctx context.Context, off int64) (resp *http.Response, relay string, err error)

// maxResumes bounds how often one fill picks up a transfer that broke off.
const maxResumes = 2

// open returns the blob under key, starting fetch unless a fetch is in
// flight or recently done; joined tells which. It returns once the source
// has answered. The caller reads with reader and calls release when done.
// onMismatch is called once when the source's bytes do not match d.
func (s *spool) open(ctx context.Context, key string, d digest.Digest, fetch fetchFunc, onMismatch func()) (b *Blob, joined bool, err error) {
	s.mu.Lock()
	s.sweepLocked(time.Now())
	if b = s.blobs[key]; b != nil {
		b.mu.Lock()
		b.readers++
		b.mu.Unlock()
		joined = true
	} else if now := time.Now(); now.Before(s.brokenUntil) {
		s.mu.Unlock()
		return nil, false, fmt.Errorf("%w: paused after a write failure until %s", ErrSpool, s.brokenUntil.Format(time.TimeOnly))
	} else {
		b = &Blob{spool: s, key: key, dgst: d, ready: make(chan struct{}),
			size: -1, wake: make(chan struct{}), readers: 1}
		s.blobs[key] = b
		go s.fill(b, fetch, onMismatch)
	}
	s.mu.Unlock()
	select {
	case <-b.ready:
	case <-ctx.Done():
		s.release(b)
		return nil, joined, ctx.Err()
	}
	b.mu.Lock()
	err = b.err
	b.mu.Unlock()
	if err != nil {
		s.release(b)
		return nil, joined, err
	}
	return b, joined, nil
}

// fill copies the source's answer into the file, checking the digest. It
// is detached from the clients: when they all go, the blob is still wanted
// by the copy into the target; a stalled source ends it (upstream timeout).
// A transfer that breaks off is picked up where it stopped (fetch with an
// offset), so a relay that dies mid-blob costs its readers nothing.
func (s *spool) fill(b *Blob, fetch fetchFunc, onMismatch func()) {
	metrics.FetchesInFlight.Inc()
	defer metrics.FetchesInFlight.Dec()
	resp, relay, err := fetch(context.Background(), 0)
	if err != nil {
		s.finish(b, err)
		return
	}
	defer func() { resp.Body.Close() }()
	if err := s.store(b, resp.ContentLength); err != nil {
		s.finish(b, err)
		return
	}
	b.mu.Lock()
	b.size, b.relay = resp.ContentLength, relay
	b.mu.Unlock()
	close(b.ready)

	v := b.dgst.Verifier()
	var buf []byte
	if b.mem == nil {
		buf = make([]byte, 256<<10)
	}
	var extra [1]byte // where a source sending more than it said shows it
	var written int64 // what b.written says; only fill changes it
	for resumes := 0; ; {
		dst := buf
		if b.mem != nil {
			if dst = b.mem[written:]; len(dst) == 0 {
				dst = extra[:]
			}
		}
		n, rerr := readChunk(resp.Body, dst)
		if n > 0 {
			if b.mem != nil && written+int64(n) > int64(len(b.mem)) {
				s.finish(b, fmt.Errorf("read %s from source: more than the %d bytes it said", b.dgst, len(b.mem)))
				return
			}
			if b.file != nil {
				if _, err := b.file.Write(dst[:n]); err != nil {
					s.pause(err)
					s.finish(b, fmt.Errorf("%w %s: %w", ErrSpool, b.dgst, err))
					return
				}
			}
			_, _ = v.Write(dst[:n])
			written += int64(n)
			b.mu.Lock()
			b.written = written
			b.notifyLocked()
			b.mu.Unlock()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if resumes < maxResumes {
				if next, err := resume(fetch, written); err == nil {
					s.log.Info("blob transfer broke off; picked up from the source", "digest", b.dgst.String(), "at", written, "error", rerr)
					resumes++
					resp.Body.Close()
					resp = next
					continue
				}
			}
			s.finish(b, fmt.Errorf("read %s from source: %w", b.dgst, rerr))
			return
		}
	}
	b.mu.Lock()
	size := b.size
	b.mu.Unlock()
	switch {
	case size >= 0 && written != size:
		s.finish(b, fmt.Errorf("read %s from source: got %d of %d bytes", b.dgst, written, size))
	case !v.Verified():
		s.log.Warn("blob from source does not match its digest; transfers aborted", "digest", b.dgst.String(), "key", b.key)
		onMismatch()
		s.finish(b, ErrDigestMismatch)
	default:
		s.finish(b, nil)
	}
}

// store gives b a place for its bytes: memory when it is small and the
// budget allows, else a file.
func (s *spool) store(b *Blob, size int64) error {
	if size >= 0 && size <= smallBlob && s.reserveMem(size) {
		b.mem = make([]byte, size)
		return nil
	}
	f, err := os.CreateTemp(s.dir, "blob-")
	if err != nil {
		s.pause(err)
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	if size > 0 {
		if err := preallocate(f, size); err != nil {
			// This blob does not fit (the disk is nearly full): it streams
			// unshared, and smaller ones still spool, so no pause.
			f.Close()
			os.Remove(f.Name())
			s.log.Warn("no room to spool a blob; streaming it unshared", "digest", b.dgst.String(), "size", size, "error", err)
			return fmt.Errorf("%w: reserve %d bytes for %s: %w", ErrSpool, size, b.dgst, err)
		}
	}
	b.file, b.path = f, f.Name()
	return nil
}

// reserveMem takes size bytes of memBudget, first letting go of finished
// blobs in memory that nobody reads and that the copy into the target has
// read (or that finished over memGrace ago), oldest first.
func (s *spool) reserveMem(size int64) bool {
	if s.memUsed.Add(size) <= memBudget {
		return true
	}
	s.memUsed.Add(-size)
	s.mu.Lock()
	defer s.mu.Unlock()
	var idle []*Blob
	now := time.Now()
	for _, b := range s.blobs {
		b.mu.Lock()
		if b.mem != nil && b.done && b.readers == 0 && (b.copied || now.Sub(b.finished) > memGrace) {
			idle = append(idle, b)
		}
		b.mu.Unlock()
	}
	s.dropOldestLocked(idle, func(*Blob) bool { return s.memUsed.Load()+size > memBudget })
	if s.memUsed.Add(size) <= memBudget {
		return true
	}
	s.memUsed.Add(-size)
	return false
}

// pause stops spooling for spoolPause after a file could not be made or
// written (a full disk, the folder gone): blobs stream unshared meanwhile.
func (s *spool) pause(err error) {
	s.log.Warn("spool write failed; streaming unshared for a while", "error", err, "pause", spoolPause)
	s.mu.Lock()
	s.brokenUntil = time.Now().Add(spoolPause)
	s.mu.Unlock()
}

// resume gets the rest of a blob from byte off on: a 206 from there, or a
// whole answer whose first off bytes are skipped.
func resume(fetch fetchFunc, off int64) (*http.Response, error) {
	resp, _, err := fetch(context.Background(), off)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", off)):
		return resp, nil
	case resp.StatusCode == http.StatusOK:
		if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
			resp.Body.Close()
			return nil, err
		}
		return resp, nil
	}
	resp.Body.Close()
	return nil, fmt.Errorf("resume at %d: answered %s", off, resp.Status)
}

// readChunk reads until half of buf is full (at least a byte), so readers
// are woken per chunk rather than per network packet.
func readChunk(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < max(1, len(buf)/2) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *spool) finish(b *Blob, err error) {
	if err != nil {
		// A failed fetch is forgotten before anyone hears of it, so the
		// next request tries again rather than joining the failure.
		s.mu.Lock()
		if s.blobs[b.key] == b {
			delete(s.blobs, b.key)
		}
		s.mu.Unlock()
	}
	b.mu.Lock()
	b.done, b.err, b.finished = true, err, time.Now()
	b.notifyLocked()
	b.mu.Unlock()
	select {
	case <-b.ready:
	default:
		close(b.ready)
	}
	if err != nil {
		s.drop(b)
	}
}

func (b *Blob) notifyLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// release ends one reader's use of b.
func (s *spool) release(b *Blob) {
	b.mu.Lock()
	b.readers--
	last := b.readers == 0 && b.gone
	b.mu.Unlock()
	if last {
		b.remove()
	}
}

// drop takes b out of use: its file goes now or with its last reader.
func (s *spool) drop(b *Blob) {
	b.mu.Lock()
	b.gone = true
	last := b.readers == 0
	b.mu.Unlock()
	if last {
		b.remove()
	}
}

func (b *Blob) remove() {
	if b.mem != nil {
		b.spool.memUsed.Add(-int64(len(b.mem)))
	}
	if b.file != nil {
		b.file.Close()
		os.Remove(b.path)
	}
}

// sweep forgets finished blobs nobody reads once they are older than
// retain, and the oldest of them while they take more than maxBytes.
func (s *spool) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(time.Now())
}

func (s *spool) sweepLocked(now time.Time) {
	var idle []*Blob
	var kept int64 // finished blobs, read or not
	for _, b := range s.blobs {
		b.mu.Lock()
		done, free := b.done, b.done && b.readers == 0
		finished, written := b.finished, b.written
		b.mu.Unlock()
		if !done {
			continue
		}
		if free && now.Sub(finished) > s.retain {
			delete(s.blobs, b.key)
			s.drop(b)
			continue
		}
		kept += written
		if free {
			idle = append(idle, b)
		}
	}
	s.dropOldestLocked(idle, func(b *Blob) bool {
		if kept <= s.maxBytes {
			return false
		}
		kept -= b.written
		return true
	})
}

// dropOldestLocked lets go of idle blobs, oldest first, while more says
// the next one is to go.
func (s *spool) dropOldestLocked(idle []*Blob, more func(b *Blob) bool) {
	sort.Slice(idle, func(i, j int) bool { return idle[i].finished.Before(idle[j].finished) })
	for _, b := range idle {
		if !more(b) {
			return
		}
		delete(s.blobs, b.key)
		s.drop(b)
	}
}

// close drops every blob; their files go with their last readers.
func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, b := range s.blobs {
		delete(s.blobs, k)
		s.drop(b)
	}
}

// Release ends one reader's use of b.
func (b *Blob) Release() { b.spool.release(b) }

// Relay names the relay that sent the blob, "" when the source did.
func (b *Blob) Relay() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.relay
}

// Length is the blob's length, -1 when the source did not say.
func (b *Blob) Length() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done && b.err == nil {
		return b.written
	}
	return b.size
}

// Reader reads [off, end) of b (end -1: to the end) for a pull, as the
// fetch goes. The last byte is held back until the digest is verified, so a
// client never gets a whole blob of wrong bytes: a mismatch ends its
// transfer short.
func (b *Blob) Reader(ctx context.Context, off, end int64) io.Reader {
	return &spoolReader{b: b, ctx: ctx, off: off, end: end, pull: true}
}

// copyReader reads all of b for a copy into the target: as Reader, but
// giving way to pulls.
func (b *Blob) copyReader(ctx context.Context) io.Reader {
	return &spoolReader{b: b, ctx: ctx, end: -1, yield: maxYield}
}

type spoolReader struct {
	b        *Blob
	ctx      context.Context
	off, end int64
	pull     bool
	yield    time.Duration // what is left of a copy's time to give way to pulls
}

func (r *spoolReader) Read(p []byte) (int, error) {
	if r.pull {
		defer r.b.spool.markPull()
	} else if err := r.giveWay(); err != nil {
		return 0, err
	}
	n, err := r.ready()
	if err != nil || len(p) == 0 {
		return 0, err
	}
	p = p[:min(n, int64(len(p)))]
	var got int
	if r.b.mem != nil {
		got = copy(p, r.b.mem[r.off:])
	} else {
		got, err = r.b.file.ReadAt(p, r.off)
	}
	r.off += int64(got)
	if !r.pull {
		// The last byte is only readable once the blob is done.
		r.b.mu.Lock()
		r.b.copied = r.b.copied || r.b.done && r.off >= r.b.written
		r.b.mu.Unlock()
	}
	if got > 0 {
		return got, nil
	}
	return 0, err
}

// ready waits until bytes from r.off on may be read and says how many
// (io.EOF at the end of what r reads).
func (r *spoolReader) ready() (int64, error) {
	for {
		if r.end >= 0 && r.off >= r.end {
			return 0, io.EOF
		}
		b := r.b
		b.mu.Lock()
		err, done, wake := b.err, b.done, b.wake
		limit := b.written
		if !(done && err == nil) && b.size >= 0 && limit >= b.size {
			limit = b.size - 1
		}
		b.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if r.off < limit {
			n := limit - r.off
			if r.end >= 0 {
				n = min(n, r.end-r.off)
			}
			return n, nil
		}
		if done {
			if r.end >= 0 && r.off < r.end {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, io.EOF
		}
		select {
		case <-wake:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

// SendTo writes [off, end) of b (end -1: to the end) to w for a pull, as
// Reader reads it, but hands w a file of its own to read from: on a plain
// TCP connection net/http then has the kernel copy the bytes (sendfile),
// and they never pass through this process. A blob in memory is written
// as it is.
func (b *Blob) SendTo(ctx context.Context, w io.ReaderFrom, off, end int64) (int64, error) {
	var f *os.File
	if b.mem == nil {
		var err error
		if f, err = os.Open(b.path); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrSpool, err)
		}
		defer f.Close()
	}
	// Copies give way while it sends and for pullQuiet after (the mark
	// comes before the count drops).
	b.spool.sending.Add(1)
	defer b.spool.sending.Add(-1)
	defer b.spool.markPull()
	r := &spoolReader{b: b, ctx: ctx, off: off, end: end, pull: true}
	var sent int64
	for {
		n, err := r.ready()
		if err == io.EOF {
			return sent, nil
		}
		if err != nil {
			return sent, err
		}
		var src io.Reader
		if f == nil {
			src = bytes.NewReader(b.mem[r.off : r.off+n])
		} else if _, err := f.Seek(r.off, io.SeekStart); err != nil {
			return sent, err
		} else {
			src = &io.LimitedReader{R: f, N: n}
		}
		m, err := w.ReadFrom(src)
		r.off += m
		sent += m
		if err != nil {
			return sent, err
		}
		if m < n {
			return sent, io.ErrUnexpectedEOF
		}
	}
}

func (s *spool) markPull() { s.lastPull.Store(time.Now().UnixNano()) }

// pullsQuiet tells whether no pull is sending and none read within pullQuiet.
func (s *spool) pullsQuiet() bool {
	return s.sending.Load() == 0 && time.Since(time.Unix(0, s.lastPull.Load())) >= pullQuiet
}

// giveWay waits while pulls read the spool, within what is left of r.yield.
func (r *spoolReader) giveWay() error {
	for r.yield > 0 && !r.b.spool.pullsQuiet() {
		select {
		case <-time.After(pullQuiet):
			r.yield -= pullQuiet
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	return nil
}

// lookup tells the length of a blob in flight or kept, if known.
func (s *spool) lookup(key string) (int64, bool) {
	s.mu.Lock()
	b := s.blobs[key]
	s.mu.Unlock()
	if b == nil {
		return 0, false
	}
	b.mu.Lock()
	failed := b.err != nil
	b.mu.Unlock()
	n := b.Length()
	return n, !failed && n >= 0
}
