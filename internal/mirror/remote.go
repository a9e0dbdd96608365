package mirror

import (
	"context"
	"fmt"
	"slices"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
)

// targetRef is how a target reference is checked: a tag+digest reference
// by its digest, which decides.
func (e *Engine) targetRef(tgt reference.Named) (name.Reference, error) {
	s := tgt.String()
	if d := imageref.Digest(tgt); d != "" {
		s = tgt.Name() + "@" + d
	}
	return e.parseTarget(tgt, s)
}

// targetWriteRef is how it is written: by tag when there is one, so the tag
// exists in the target; a digest-only reference by digest.
func (e *Engine) targetWriteRef(tgt reference.Named) (name.Reference, error) {
	s := tgt.String()
	if t := imageref.Tag(tgt); t != "" {
		s = tgt.Name() + ":" + t
	}
	return e.parseTarget(tgt, s)
}

func (e *Engine) parseTarget(tgt reference.Named, s string) (name.Reference, error) {
	ref, err := name.ParseReference(s, e.target.NameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("target reference %s: %w", tgt, err)
	}
	return ref, nil
}

func (e *Engine) targetOptions(ctx context.Context) ([]remote.Option, error) {
	a, err := e.target.Authenticator(ctx)
	if err != nil {
		return nil, fmt.Errorf("authenticate to target %s: %w", e.target.Mapper().Base(), err)
	}
	return e.remoteOptions(ctx, remote.WithAuth(a), remote.WithTransport(e.tgtRT)), nil
}

// sourceOptions: the config's credentials for a registry first, then the
// caller's (a pod's pull secrets), anonymous otherwise.
func (e *Engine) sourceOptions(ctx context.Context, req Request) []remote.Option {
	chains := []authn.Keychain{e.opts.Sources}
	if e.opts.SourceKeychain != nil {
		chains = append(chains, e.opts.SourceKeychain)
	}
	if req.Keychain != nil {
		chains = append(chains, req.Keychain)
	}
	return e.remoteOptions(ctx, remote.WithAuthFromKeychain(authn.NewMultiKeychain(chains...)),
		remote.WithTransport(e.srcRT))
}

// remoteOptions leave retrying to retryTransport, which honours Retry-After.
func (e *Engine) remoteOptions(ctx context.Context, extra ...remote.Option) []remote.Option {
	return append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithJobs(e.opts.Jobs),
		remote.WithRetryStatusCodes(),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}, extra...)
}

// clients are one copy's registry clients. Reads share one authenticated
// client per repository (remote.Reuse): without it go-containerregistry
// pings /v2/ (an insecure registry first over HTTPS) and asks for a token
// on every call, 6 of the 14 requests a copy of a present image made.
// Writes keep options of their own: they carry a progress channel, and
// they update the referrers fallback tag, which reads leave to
// listReferrers.
type clients struct {
	src, tgt *remote.Puller
	srcOpts  []remote.Option
	tgtOpts  []remote.Option
}

func (e *Engine) clients(ctx context.Context, req Request) (*clients, error) {
	tgtOpts, err := e.targetOptions(ctx)
	if err != nil {
		return nil, err
	}
	c := &clients{srcOpts: e.sourceOptions(ctx, req), tgtOpts: tgtOpts}
	if c.src, err = remote.NewPuller(slices.Concat(c.srcOpts, noTagFallback)...); err != nil {
		return nil, fmt.Errorf("source client: %w", err)
	}
	if c.tgt, err = remote.NewPuller(slices.Concat(c.tgtOpts, noTagFallback)...); err != nil {
		return nil, fmt.Errorf("target client: %w", err)
	}
	return c, nil
}

var noTagFallback = []remote.Option{remote.WithReferrersTagFallback(false)}

// sourceRead and targetRead are the options of a read under ctx (the
// referrers are copied later, under a context of their own).
func (c *clients) sourceRead(ctx context.Context) []remote.Option {
	return slices.Concat(c.srcOpts, []remote.Option{remote.WithContext(ctx), remote.Reuse(c.src)})
}

func (c *clients) targetRead(ctx context.Context) []remote.Option {
	return slices.Concat(c.tgtOpts, []remote.Option{remote.WithContext(ctx), remote.Reuse(c.tgt)})
}

func (c *clients) targetWrite(ctx context.Context) []remote.Option {
	return slices.Concat(c.tgtOpts, []remote.Option{remote.WithContext(ctx)})
}
