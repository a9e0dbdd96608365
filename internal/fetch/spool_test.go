package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// pipeSource is a source whose bytes the test writes as it likes.
type pipeSource struct {
	fetches atomic.Int32
	pw      *io.PipeWriter
	body    *io.PipeReader
	size    int64
}

func newPipeSource(size int64) *pipeSource {
	pr, pw := io.Pipe()
	return &pipeSource{pw: pw, body: pr, size: size}
}

func (s *pipeSource) fetch(_ context.Context, off int64) (*http.Response, string, error) {
	s.fetches.Add(1)
	if off > 0 {
		return nil, "", errors.New("a pipe cannot resume")
	}
	return &http.Response{StatusCode: 200, ContentLength: s.size, Body: s.body}, "", nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func readAll(ctx context.Context, b *Blob, off, end int64) ([]byte, error) {
	var out bytes.Buffer
	_, err := io.Copy(&out, b.Reader(ctx, off, end))
	return out.Bytes(), err
}

// Readers that join at different times all read the one fetch, and none
// gets the last byte before the digest is checked.
// So it goes for a small blob held in memory and for a file.
func TestSpoolReadersShareOneFetch(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testShareOneFetch(t, smallBlob-17, 0) })
	t.Run("file", func(t *testing.T) { testShareOneFetch(t, 3<<20+17, 1) })
}

func testShareOneFetch(t *testing.T, size, files int) {
	dir := t.TempDir()
	s := newSpool(dir, time.Minute, 1<<30, quiet())
	data := randomBytes(size)
	d := digest.FromBytes(data)
	src := newPipeSource(int64(len(data)))
	ctx := context.Background()

	type result struct {
		b   []byte
		err error
	}
	results := make(chan result, 3)
	var wg sync.WaitGroup
	open := func() {
		b, _, err := s.open(ctx, "k", d, src.fetch, func() {})
		must(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.release(b)
			got, err := readAll(ctx, b, 0, -1)
			results <- result{got, err}
		}()
	}
	open()
	_, _ = src.pw.Write(data[:size/3])
	open()
	_, _ = src.pw.Write(data[size/3 : len(data)-1])
	open()
	if left, _ := os.ReadDir(dir); len(left) != files {
		t.Fatalf("%d files in the spool while the blob streams, want %d", len(left), files)
	}
	// Everything but the last byte is in: readers must still be waiting.
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-results:
		t.Fatalf("a reader finished before the blob was verified: %d bytes, %v", len(r.b), r.err)
	default:
	}
	_, _ = src.pw.Write(data[len(data)-1:])
	src.pw.Close()
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || !bytes.Equal(r.b, data) {
			t.Fatalf("reader: %d bytes, %v", len(r.b), r.err)
		}
	}
	if n := src.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	// Kept for late readers, with ranges.
	b, joined, err := s.open(ctx, "k", d, src.fetch, func() {})
	must(t, err)
	got, err := readAll(ctx, b, 5, 10)
	must(t, err)
	if !joined || !bytes.Equal(got, data[5:10]) {
		t.Fatalf("late range read: joined=%v %q", joined, got)
	}
	s.release(b)
}

// Bytes that do not match the digest break every reader one byte short.
func TestSpoolMismatchBreaksReaders(t *testing.T) {
	s := newSpool(t.TempDir(), time.Minute, 1<<30, quiet())
	data := randomBytes(1 << 20)
	src := newPipeSource(int64(len(data)))
	mismatches := 0
	b, _, err := s.open(context.Background(), "k", digest.FromString("other"), src.fetch, func() { mismatches++ })
	must(t, err)
	go func() { _, _ = src.pw.Write(data); src.pw.Close() }()
	got, err := readAll(context.Background(), b, 0, -1)
	s.release(b)
	if !errors.Is(err, ErrDigestMismatch) || len(got) >= len(data) {
		t.Fatalf("reader: %d of %d bytes, %v", len(got), len(data), err)
	}
	if mismatches != 1 {
		t.Fatalf("mismatch reported %d times", mismatches)
	}
	// A failed blob is forgotten at once: the next request fetches again.
	src2 := newPipeSource(3)
	go func() { _, _ = src2.pw.Write([]byte("abc")); src2.pw.Close() }()
	b, joined, err := s.open(context.Background(), "k", digest.FromString("abc"), src2.fetch, func() {})
	must(t, err)
	got, err = readAll(context.Background(), b, 0, -1)
	s.release(b)
	if joined || err != nil || string(got) != "abc" {
		t.Fatalf("after a failure: joined=%v %q %v", joined, got, err)
	}
}

// A source's error reaches the requester and is not kept.
func TestSpoolFetchError(t *testing.T) {
	s := newSpool(t.TempDir(), time.Minute, 1<<30, quiet())
	calls := 0
	fail := func(context.Context, int64) (*http.Response, string, error) {
		calls++
		return nil, "", &upstream.Error{Status: 404}
	}
	for range 2 {
		if _, _, err := s.open(context.Background(), "k", digest.FromString("x"), fail, func() {}); !upstream.IsNotFound(err) {
			t.Fatalf("open: %v", err)
		}
	}
	if calls != 2 {
		t.Fatalf("%d fetches, want 2", calls)
	}
	if len(s.blobs) != 0 {
		t.Fatal("a failed fetch was kept")
	}
}

// Finished blobs go after retain, or earlier beyond maxBytes; never while read.
func TestSpoolSweep(t *testing.T) {
	dir := t.TempDir()
	s := newSpool(dir, 50*time.Millisecond, 1500, quiet())
	ctx := context.Background()
	openDone := func(key string, data []byte) *Blob {
		src := newPipeSource(int64(len(data)))
		go func() { _, _ = src.pw.Write(data); src.pw.Close() }()
		b, _, err := s.open(ctx, key, digest.FromBytes(data), src.fetch, func() {})
		must(t, err)
		_, err = readAll(ctx, b, 0, -1)
		must(t, err)
		return b
	}
	a := openDone("a", randomBytes(1000))
	s.release(a)
	b := openDone("b", randomBytes(1000)) // over maxBytes: a goes, b is read
	s.sweep()
	if _, ok := s.lookup("a"); ok {
		t.Fatal("the oldest idle blob outlived maxBytes")
	}
	if _, ok := s.lookup("b"); !ok {
		t.Fatal("a blob being read was dropped")
	}
	s.release(b)
	time.Sleep(60 * time.Millisecond)
	s.sweep()
	if _, ok := s.lookup("b"); ok {
		t.Fatal("a blob outlived retain")
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Fatalf("%d files left in the spool", len(left))
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The fetch layer's defaults, as README's proxy block documents them.
func TestDefaults(t *testing.T) {
	o := Options{}.defaults()
	if o.TagTTL != 5*time.Minute || o.Timeout != 30*time.Second || o.MaxConcurrent != 32 {
		t.Errorf("defaults: %+v", o)
	}
}

// brokenBody sends its bytes and then fails, as a relay that dies mid-blob.
type brokenBody struct{ r io.Reader }

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *brokenBody) Close() error { return nil }

// A transfer that breaks off is picked up at the byte where it stopped (a
// Range request to the source, or a whole answer with that many bytes
// skipped), and the blob is whole and checked; the relay's answer says so.
func TestSpoolResumes(t *testing.T) {
	data := randomBytes(3 << 20)
	d := digest.FromBytes(data)
	for _, partial := range []bool{true, false} {
		s := newSpool(t.TempDir(), time.Minute, 1<<30, quiet())
		var offsets []int64
		fetch := func(_ context.Context, off int64) (*http.Response, string, error) {
			offsets = append(offsets, off)
			if off == 0 {
				return &http.Response{StatusCode: 200, ContentLength: int64(len(data)),
					Body: &brokenBody{bytes.NewReader(data[:1<<20+77])}}, upstream.Hub, nil
			}
			if !partial {
				return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader(data))}, "", nil
			}
			h := http.Header{"Content-Range": {fmt.Sprintf("bytes %d-%d/%d", off, len(data)-1, len(data))}}
			return &http.Response{StatusCode: 206, Header: h, Body: io.NopCloser(bytes.NewReader(data[off:]))}, "", nil
		}
		b, _, err := s.open(context.Background(), "k", d, fetch, func() { t.Error("digest mismatch") })
		must(t, err)
		got, err := readAll(context.Background(), b, 0, -1)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("partial=%v: %d bytes, %v; want the whole blob", partial, len(got), err)
		}
		if b.Relay() != upstream.Hub || len(offsets) != 2 || offsets[1] != 1<<20+77 {
			t.Fatalf("partial=%v: relayed=%v, fetches at %v", partial, b.Relay(), offsets)
		}
		b.Release()
	}
}

// A copy's reader gives way to pulls: it reads nothing while pulls read
// (a pull's read marks the spool), and all of the blob once they are quiet.
func TestSpoolCopyFollowsPulls(t *testing.T) {
	s, b, data := fillingBlob(t)
	ctx := context.Background()

	if _, err := b.Reader(ctx, 0, -1).Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if s.lastPull.Load() == 0 {
		t.Fatal("a pull's read did not mark the spool")
	}
	// Pulls go on reading until the test says they stopped.
	s.lastPull.Store(time.Now().Add(time.Hour).UnixNano())
	var stopped atomic.Bool
	go func() {
		time.Sleep(5 * pullQuiet)
		stopped.Store(true)
		s.lastPull.Store(0)
	}()
	got, err := io.ReadAll(b.copyReader(ctx))
	if !stopped.Load() {
		t.Fatal("the copy read while pulls were reading")
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copy read %d bytes (%v), want the blob's %d", len(got), err, len(data))
	}
}

// blockingWriter holds up a pull's send (one long sendfile) until let go.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
}

func (w *blockingWriter) ReadFrom(r io.Reader) (int64, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.release
	return io.Copy(io.Discard, r)
}

// A pull inside one long send counts as reading, however long ago its last
// read began: the copy waits for the send to end.
func TestSpoolCopyWaitsForSend(t *testing.T) {
	s, b, data := fillingBlob(t)
	ctx := context.Background()

	w := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	sent := make(chan error, 1)
	go func() { _, err := b.SendTo(ctx, w, 0, -1); sent <- err }()
	<-w.entered
	s.lastPull.Store(0) // no read for a long time: only the send says a pull is on
	var released atomic.Bool
	go func() {
		time.Sleep(5 * pullQuiet)
		released.Store(true)
		close(w.release)
	}()
	got, err := io.ReadAll(b.copyReader(ctx))
	if !released.Load() {
		t.Fatal("the copy read while a pull was sending")
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copy read %d bytes (%v), want the blob's %d", len(got), err, len(data))
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// fillingBlob is a spool with one 1 MiB blob whose fetch streams in.
func fillingBlob(t *testing.T) (*spool, *Blob, []byte) {
	t.Helper()
	s := newSpool(t.TempDir(), time.Minute, 1<<30, quiet())
	data := randomBytes(1 << 20)
	src := newPipeSource(int64(len(data)))
	b, _, err := s.open(context.Background(), "k", digest.FromBytes(data), src.fetch, func() {})
	must(t, err)
	t.Cleanup(func() { s.release(b) })
	go func() { _, _ = src.pw.Write(data); src.pw.Close() }()
	return s, b, data
}

// Small blobs stay in memory within memBudget: beyond it idle ones go that
// were copied or are past memGrace, and while none may, a new one takes a
// file.
func TestSpoolMemoryBudget(t *testing.T) {
	dir := t.TempDir()
	s := newSpool(dir, time.Hour, 1<<40, quiet())
	ctx := context.Background()
	get := func(key string, data []byte) *Blob {
		t.Helper()
		src := newPipeSource(int64(len(data)))
		go func() { _, _ = src.pw.Write(data); src.pw.Close() }()
		b, _, err := s.open(ctx, key, digest.FromBytes(data), src.fetch, func() {})
		must(t, err)
		got, err := readAll(ctx, b, 0, -1)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read %d bytes, %v", key, len(got), err)
		}
		return b
	}
	var held []*Blob
	for i := range memBudget / smallBlob {
		held = append(held, get(fmt.Sprint("m", i), randomBytes(smallBlob)))
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 || s.memUsed.Load() != memBudget {
		t.Fatalf("%d files, %d bytes in memory after filling the budget", len(left), s.memUsed.Load())
	}
	// All are being read: the next one goes to a file.
	over := get("over", randomBytes(1000))
	if over.mem != nil || over.file == nil {
		t.Fatal("a small blob over the budget was not put in a file")
	}
	s.release(over)
	// Idle, and the oldest past memGrace: it makes room.
	for _, b := range held {
		s.release(b)
	}
	held[0].mu.Lock()
	held[0].finished = time.Now().Add(-2 * memGrace)
	held[0].mu.Unlock()
	next := get("next", randomBytes(smallBlob))
	defer func() { s.release(next) }()
	if next.mem == nil {
		t.Fatal("an idle blob past memGrace did not make room")
	}
	if _, ok := s.lookup("m0"); ok {
		t.Fatal("the oldest idle blob in memory was kept over the budget")
	}
	if _, ok := s.lookup("m1"); !ok {
		t.Fatal("an idle blob within memGrace was let go")
	}
	// One the copy into the target read to the end may go at once.
	if _, err := io.ReadAll(held[1].copyReader(ctx)); err != nil {
		t.Fatal(err)
	}
	s.release(next)
	next = get("next2", randomBytes(smallBlob))
	if next.mem == nil {
		t.Fatal("an idle blob already copied did not make room")
	}
	if _, ok := s.lookup("m1"); ok {
		t.Fatal("an idle blob already copied was kept over the budget")
	}
	if _, ok := s.lookup("m2"); !ok {
		t.Fatal("an idle blob within memGrace, not copied, was let go")
	}
	if s.memUsed.Load() != memBudget {
		t.Fatalf("%d bytes in memory, want %d", s.memUsed.Load(), memBudget)
	}
	s.close()
	if s.memUsed.Load() != smallBlob { // next is still read
		t.Fatalf("%d bytes in memory after close, want the one still read", s.memUsed.Load())
	}
}

// A source sending more bytes than it said fails the blob (it does not
// fit the memory it was given), and the next request fetches again.
func TestSpoolLongerThanSaid(t *testing.T) {
	s := newSpool(t.TempDir(), time.Minute, 1<<30, quiet())
	data := randomBytes(1000)
	src := newPipeSource(int64(len(data) - 1))
	go func() { _, _ = src.pw.Write(data); src.pw.Close() }()
	b, _, err := s.open(context.Background(), "k", digest.FromBytes(data[:999]), src.fetch, func() {})
	// The fill may have failed the blob already when open looks (it is
	// not waited for past the headers): then open says so.
	if err == nil {
		var got []byte
		got, err = readAll(context.Background(), b, 0, -1)
		s.release(b)
		if len(got) >= 999 {
			t.Fatalf("read %d bytes, %v; want a failure short of the end", len(got), err)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "more than the 999 bytes it said") {
		t.Fatalf("error %v, want the source's extra bytes named", err)
	}
	if _, ok := s.lookup("k"); ok {
		t.Fatal("a failed blob was kept")
	}
}
