// Package mirror copies images from their sources into the target: a
// bounded queue and worker pool, one copy per image however many ask, and a
// cache of what the target holds.
package mirror

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// Copy results, counted in k8s_image_swapper_copies_total.
const (
	resultCopied  = "copied"
	resultPresent = "present"
	resultFailed  = "failed"
	resultDropped = "dropped"
)

// ErrQueueFull is returned when a delayed copy was dropped.
var ErrQueueFull = errors.New("copy queue is full")

// Options tune an Engine. A zero value takes its default (see defaults).
type Options struct {
	Workers     int           // copies at once (default 4)
	QueueSize   int           // copies waiting (default 1000)
	ExistsTTL   time.Duration // how long "present" is believed (default 1h)
	MissingTTL  time.Duration // how long "missing" is believed (default 30s)
	CopyTimeout time.Duration // bound on a queued copy (default 15m)
	Retries     int           // retries of a registry request on 429/5xx (default 5; negative: none)
	RetryWait   time.Duration // cap on one retry wait (default 30s)
	Jobs        int           // blobs uploaded at once per copy (default 4)
	Platforms   []v1.Platform // copy only these; empty means all
	// SkipReferrers copies no signatures, attestations, SBOMs nor OCI
	// referrers after an image (source.copyReferrers: false).
	SkipReferrers bool
	Sources       *auth.Sources
	// SourceKeychain adds credentials for sources (cloud registries).
	SourceKeychain authn.Keychain
	// SourceTransport reaches sources; default target.NewTransport(false).
	SourceTransport http.RoundTripper
	// SourceBlobs, when set, opens a layer of a source repository with a
	// reader that checks the bytes against the digest itself (the node
	// proxy's spool, shared with the pulls): a copy uploads from it without
	// hashing the bytes again. On an error the layer is read through
	// SourceTransport, and go-containerregistry checks it.
	SourceBlobs func(ctx context.Context, repo name.Repository, d v1.Hash) (io.ReadCloser, error)
	Logger      *slog.Logger
}

// defaults fills what o leaves zero: every default of the engine.
func (o Options) defaults() Options {
	o.Workers = cmp.Or(o.Workers, 4)
	o.QueueSize = cmp.Or(o.QueueSize, 1000)
	o.ExistsTTL = cmp.Or(o.ExistsTTL, time.Hour)
	o.MissingTTL = cmp.Or(o.MissingTTL, 30*time.Second)
	o.CopyTimeout = cmp.Or(o.CopyTimeout, 15*time.Minute)
	o.Retries = cmp.Or(o.Retries, 5)
	o.RetryWait = cmp.Or(o.RetryWait, 30*time.Second)
	o.Jobs = cmp.Or(o.Jobs, 4)
	if o.SourceTransport == nil {
		o.SourceTransport = target.NewTransport(false)
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	return o
}

// Request asks for one image to be mirrored.
type Request struct {
	Source reference.Named // normalised, with tag and/or digest
	// Keychain holds the caller's credentials (a pod's pull secrets), tried
	// after the config's.
	Keychain authn.Keychain
	// Progress, when set, is told how many bytes the copy has written into
	// the target (complete of total) while it writes.
	Progress func(complete, total int64)
}

// Result says what a copy did.
type Result struct {
	Source  reference.Named
	Target  reference.Named
	Digest  v1.Hash
	Present bool // the target had it already; nothing was copied
}

// Engine mirrors images into one target.
type Engine struct {
	target  target.Target
	opts    Options
	log     *slog.Logger
	srcRT   http.RoundTripper
	tgtRT   http.RoundTripper
	cache   existsCache
	homes   blobHomes
	queue   chan *Job
	refs    chan refJob    // referrer copies waiting, after their image
	pending sync.WaitGroup // referrer copies queued or running
	mu      sync.Mutex
	jobs    map[string]*Job // in flight, by source reference
	wg      sync.WaitGroup
	stop    context.CancelFunc
	started bool
}

// Job is one copy in flight; every caller asking for the same image shares it.
type Job struct {
	req Request
	// others are the keychains of callers that joined, each tried in turn
	// when the source refuses the ones before: a pod's pull secrets must
	// not be lost because another pod's asked first. Guarded by Engine.mu.
	others []authn.Keychain
	done   chan struct{}
	res    Result
	err    error
}

// maxOtherKeychains bounds the keychains a job keeps for another try.
const maxOtherKeychains = 8

// Wait returns the job's result, or ctx's error if that comes first.
func (j *Job) Wait(ctx context.Context) (Result, error) {
	select {
	case <-j.done:
		return j.res, j.err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("wait for copy of %s: %w", j.req.Source, ctx.Err())
	}
}

// Done is closed when the job has finished.
func (j *Job) Done() <-chan struct{} { return j.done }

// New returns an engine; call Start to run its workers.
func New(t target.Target, o Options) *Engine {
	o = o.defaults()
	metrics.Zero(metrics.CopiesTotal, []string{resultCopied, resultPresent, resultFailed, resultDropped})
	metrics.Zero(metrics.CopyDuration, []string{resultCopied, resultPresent, resultFailed})
	metrics.Zero(metrics.ExistsCache, []string{cacheHit, cacheMiss})
	metrics.Zero(metrics.ReferrerCopies, []string{refCopied, refFailed, refDropped})
	return &Engine{
		target: t,
		opts:   o,
		log:    o.Logger,
		srcRT:  &retryTransport{next: o.SourceTransport, retries: o.Retries, waitMax: o.RetryWait},
		tgtRT:  &retryTransport{next: t.Transport(), retries: o.Retries, waitMax: o.RetryWait},
		cache:  newExistsCache(o.ExistsTTL, o.MissingTTL),
		homes:  blobHomes{ttlcache.New[v1.Hash, name.Repository](maxBlobHomes)},
		queue:  make(chan *Job, o.QueueSize),
		refs:   make(chan refJob, o.QueueSize),
		jobs:   map[string]*Job{},
	}
}

// Target is the engine's target.
func (e *Engine) Target() target.Target { return e.target }

// Start runs the workers until Close.
func (e *Engine) Start(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return
	}
	e.started = true
	ctx, e.stop = context.WithCancel(ctx)
	for range referrerWorkers {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.referrerWorker(ctx)
		}()
	}
	for range e.opts.Workers {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-e.queue:
					metrics.CopyQueueDepth.Set(float64(len(e.queue)))
					jctx, cancel := context.WithTimeout(ctx, e.opts.CopyTimeout)
					e.run(jctx, j)
					cancel()
				}
			}
		}()
	}
}

// Close stops the workers; queued copies that did not start are failed.
func (e *Engine) Close() {
	e.mu.Lock()
	stop := e.stop
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
	e.wg.Wait()
	for {
		select {
		case j := <-e.queue:
			e.finish(j, Result{}, errors.New("copy engine stopped"))
		case <-e.refs:
			e.pending.Done() // copied again with the image's next copy
		default:
			metrics.CopyQueueDepth.Set(0)
			return
		}
	}
}

// Mirror applies an imageCopyPolicy: delayed queues and returns, immediate
// queues and waits up to deadline, force copies in the caller within
// deadline, none does nothing.
func (e *Engine) Mirror(ctx context.Context, how policy.Copy, deadline time.Duration, req Request) error {
	switch how {
	case policy.CopyNone:
		return nil
	case policy.CopyDelayed:
		_, err := e.Submit(req)
		return err
	case policy.CopyImmediate:
		j, err := e.Submit(req)
		if err != nil {
			return err
		}
		ctx, cancel := withDeadline(ctx, deadline)
		defer cancel()
		_, err = j.Wait(ctx)
		return err
	case policy.CopyForce:
		ctx, cancel := withDeadline(ctx, deadline)
		defer cancel()
		_, err := e.Copy(ctx, req)
		return err
	default:
		return fmt.Errorf("unknown image copy policy %q", how)
	}
}

func withDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// Submit queues a copy and returns at once. A copy of the same image
// already queued or running is shared. When the queue is full the request
// is dropped (ErrQueueFull), never blocking the caller.
func (e *Engine) Submit(req Request) (*Job, error) {
	j, fresh := e.claim(req)
	if !fresh {
		return j, nil
	}
	select {
	case e.queue <- j:
		metrics.CopyQueueDepth.Set(float64(len(e.queue)))
		return j, nil
	default:
		metrics.CopiesTotal.WithLabelValues(resultDropped).Inc()
		e.log.Warn("copy queue full, copy dropped", "image", req.Source.String(), "queue", cap(e.queue))
		err := fmt.Errorf("mirror %s: %w", req.Source, ErrQueueFull)
		e.finish(j, Result{}, err)
		return j, err
	}
}

// Copy mirrors the image now, in the caller, sharing a copy in flight.
func (e *Engine) Copy(ctx context.Context, req Request) (Result, error) {
	j, fresh := e.claim(req)
	if fresh {
		e.run(ctx, j)
	}
	return j.Wait(ctx)
}

// claim returns the in-flight job for req's image, or registers a new one.
func (e *Engine) claim(req Request) (*Job, bool) {
	key := req.Source.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	if j, ok := e.jobs[key]; ok {
		if req.Keychain != nil && len(j.others) < maxOtherKeychains {
			j.others = append(j.others, req.Keychain)
		}
		return j, false
	}
	j := &Job{req: req, done: make(chan struct{})}
	e.jobs[key] = j
	return j, true
}

// copyWith copies req with clients of its own, which the referrer copy
// after it reuses.
func (e *Engine) copyWith(ctx context.Context, req Request) (*clients, Result, subjects, error) {
	c, err := e.clients(ctx, req)
	if err != nil {
		return nil, Result{Source: req.Source}, subjects{}, err
	}
	res, sub, err := e.copy(ctx, req, c)
	return c, res, sub, err
}

func (e *Engine) run(ctx context.Context, j *Job) {
	metrics.CopiesInFlight.Inc()
	defer metrics.CopiesInFlight.Dec()
	start := time.Now()
	req := j.req
	c, res, sub, err := e.copyWith(ctx, req)
	for err != nil && authDenied(err) && ctx.Err() == nil {
		kc, ok := e.nextKeychain(j)
		if !ok {
			break
		}
		e.log.Info("source refused the credentials of a copy; trying those of another caller",
			"image", req.Source.String(), "error", err)
		req.Keychain = kc
		c, res, sub, err = e.copyWith(ctx, req)
	}
	result := resultCopied
	switch {
	case err != nil:
		result = resultFailed
		e.log.Error("copy failed", "image", j.req.Source.String(), "error", err)
	case res.Present:
		result = resultPresent
	default:
		e.log.Info("copied", "image", j.req.Source.String(), "target", res.Target.String(),
			"digest", res.Digest.String(), "duration", time.Since(start).Round(time.Millisecond))
	}
	metrics.CopiesTotal.WithLabelValues(result).Inc()
	metrics.CopyDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
	// Signatures follow the image, present or copied (it may have been
	// signed again), after its waiters have their answer.
	after := e.referrersAfter(ctx, req, c, sub, err)
	e.finish(j, res, err)
	after()
}

// nextKeychain takes the keychain of the next caller that joined j. With
// none left it unlists j at once, so that a caller coming later starts a
// copy with its own credentials rather than joining one that has failed.
func (e *Engine) nextKeychain(j *Job) (authn.Keychain, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(j.others) == 0 {
		if key := j.req.Source.String(); e.jobs[key] == j {
			delete(e.jobs, key)
		}
		return nil, false
	}
	kc := j.others[0]
	j.others = j.others[1:]
	return kc, true
}

func (e *Engine) finish(j *Job, res Result, err error) {
	e.mu.Lock()
	if e.jobs[j.req.Source.String()] == j {
		delete(e.jobs, j.req.Source.String())
	}
	e.mu.Unlock()
	j.res, j.err = res, err
	close(j.done)
}
