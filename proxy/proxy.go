// Package proxy is the node proxy: a pull-through OCI registry that
// containerd on every node uses as a mirror (hosts.toml). It serves the OCI
// distribution read API, routing each request by the ?ns=<registry>
// containerd adds: from the target's copy when it has one, else from the
// source (through the fetch layer it is handed) while the copy into the
// target is triggered. A target reference whose image is missing is served
// from its source.
//
// Handlers return an error; ServeHTTP writes it once, in the spec's format.
package proxy

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// DefaultAddress is proxy.listenAddress's default: loopback, for containerd
// on the same node.
const DefaultAddress = "127.0.0.1:7439"

// DefaultRegistries are the public registries served when proxy.registries
// is not set.
var DefaultRegistries = []string{
	"docker.io", "ghcr.io", "quay.io", "registry.k8s.io", "gcr.io", "public.ecr.aws", "mcr.microsoft.com",
}

// Mirror is what the proxy needs of the copy engine (*mirror.Engine).
type Mirror interface {
	Submit(req mirror.Request) (*mirror.Job, error)
	Forget(src reference.Named)
}

// Options configure a Proxy. A zero value takes its default (see defaults).
type Options struct {
	Target target.Target
	// Sources fetches from the source registries; the copy engine reads
	// through the same one.
	Sources *fetch.Sources
	// Mirror copies images into the target; nil never copies.
	Mirror Mirror
	// Registries are the source registries served (host[:port]); any other
	// is refused. Docker Hub's names (index.docker.io, ...) are one.
	Registries []string
	// OnMiss is passthrough (serve the source at once; the default) or wait
	// (wait up to WaitTimeout for the copy, then serve the target).
	OnMiss      policy.OnMiss
	WaitTimeout time.Duration // default 30s
	// UpstreamTimeout bounds the target's answers (until the response
	// headers, and each stalled read) and the source's about private
	// images (default upstream.DefaultTimeout).
	UpstreamTimeout time.Duration
	// MaxConcurrent bounds the requests at once to the target, as four
	// times this (default upstream.DefaultMaxConcurrent, as for a source).
	MaxConcurrent int
	// Private is deny (the default) or allow; see private.go.
	Private policy.Private
	// SharedRepositories are source repositories (globs on host/repo)
	// served to every pull even when private.
	SharedRepositories []string
	// Push lets authenticated clients push into a local target, never into
	// a mirror path; nil (the default) makes the proxy read-only.
	Push   *PushOptions
	Logger *slog.Logger
}

// defaults fills what o leaves zero: every default of the proxy.
func (o Options) defaults() Options {
	o.WaitTimeout = cmp.Or(o.WaitTimeout, 30*time.Second)
	o.UpstreamTimeout = cmp.Or(o.UpstreamTimeout, upstream.DefaultTimeout)
	o.MaxConcurrent = cmp.Or(o.MaxConcurrent, upstream.DefaultMaxConcurrent)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	return o
}

// Proxy serves the OCI distribution read API; see the package comment.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	mapper   imageref.Mapper
	target   *upstream.Client
	sources  *fetch.Sources
	store    http.Handler     // the local target's full API; nil for others
	files    blobFiles        // the local target's blob files; nil for others
	push     *pushAuth        // nil: no client writes
	ledger   target.TagLedger // the tags copies wrote; nil when the target keeps none
	mirror   Mirror
	allowed  map[string]bool
	copies   *copies
	presence *presence
	privacy  *privacy

	imageLabels imageLabels
}

// New checks o and returns a proxy.
func New(o Options) (*Proxy, error) {
	if o.Target == nil {
		return nil, errors.New("proxy: no target")
	}
	if o.Sources == nil {
		return nil, errors.New("proxy: no source fetches")
	}
	var err error
	if o.OnMiss, err = policy.ParseOnMiss(string(o.OnMiss)); err != nil {
		return nil, fmt.Errorf("proxy: onMiss: %w", err)
	}
	if o.Private, err = policy.ParsePrivate(string(o.Private)); err != nil {
		return nil, fmt.Errorf("proxy: private: %w", err)
	}
	o = o.defaults()
	t := o.Target
	mapper := t.Mapper()
	reg, err := name.NewRegistry(mapper.Host, t.NameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("proxy: target registry %s: %w", mapper.Host, err)
	}
	p := &Proxy{
		opts:   o,
		log:    o.Logger,
		mapper: mapper,
		target: upstream.New(upstream.Options{
			Role: upstream.Target, Registry: reg, Name: mapper.Host,
			Auth:      t.Authenticator,
			Transport: t.Transport(), Timeout: o.UpstreamTimeout, MaxConcurrent: 4 * o.MaxConcurrent,
		}),
		sources:  o.Sources,
		mirror:   o.Mirror,
		allowed:  map[string]bool{},
		copies:   newCopies(),
		presence: newPresence(),
	}
	if s, ok := t.(interface{ Handler() http.Handler }); ok {
		p.store = s.Handler()
	}
	p.files, _ = t.(blobFiles)
	if l, ok := t.(target.TagLedger); ok {
		p.ledger = l
	}
	if o.Push != nil {
		if p.store == nil {
			return nil, fmt.Errorf("proxy: pushes need a local target, not %s", t.Kind())
		}
		if p.push, err = newPushAuth(*o.Push); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	for _, r := range o.Registries {
		p.allowed[registry.Canonical(r)] = true
	}
	p.privacy = newPrivacy(p, o.Private, o.SharedRepositories)
	p.zeroMetrics()
	return p, nil
}

// ServeHTTP serves /v2/ and everything under it. Whatever a handler returns
// as an error is the answer, written here and nowhere else.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(fetch.NoRelayHeader) != "" {
		// A relay passed this on: fetch from the sources, never relay again.
		r = r.WithContext(fetch.WithoutRelay(r.Context()))
	}
	c, content := registry.ParsePath(r.URL.Path)
	var err error
	switch {
	case r.URL.Path == "/v2/" || r.URL.Path == "/v2":
		err = p.serveBase(w, r)
	case isWrite(r):
		err = p.serveWrite(w, r)
	case !content:
		err = p.serveOther(w, r)
	default:
		rec := &recorder{ResponseWriter: w}
		w = rec
		ex := newExchange(rec, r, c)
		defer p.done(ex) // counts the answer written below too
		err = p.serveContent(ex)
	}
	if err != nil {
		writeError(w, r, asHTTPError(err, notFoundCode(c.Kind)))
	}
}

// serveBase answers the API version check.
func (p *Proxy) serveBase(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return newError(http.StatusMethodNotAllowed, codeUnsupported, "method %s not allowed", r.Method)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
	return nil
}

// serveOther serves the read APIs beyond manifests and blobs (tag lists,
// catalog, referrers) from a local target, which is then also a plain
// registry; other targets are not listed through the proxy.
func (p *Proxy) serveOther(w http.ResponseWriter, r *http.Request) error {
	if p.store == nil {
		return newError(http.StatusNotFound, codeUnsupported, "%s is not served by this proxy", r.URL.Path)
	}
	return p.serveListing(w, r)
}

// serveContent serves a manifest or a blob: from the target alone for all
// plans but the last, then per the last plan.
func (p *Proxy) serveContent(ex *exchange) error {
	plans, err := p.route(ex.r.URL.Query().Get("ns"), ex.call.Repo)
	if err != nil {
		ex.registry = "unknown"
		return err
	}
	for _, pl := range plans[:len(plans)-1] {
		if p.fromTargetOnly(ex, pl) {
			return nil
		}
	}
	pl := plans[len(plans)-1]
	ex.use(pl)
	if err := p.mayServe(ex, pl); err != nil {
		return err
	}
	if ex.call.Kind == registry.Manifests {
		return p.serveManifest(ex, pl)
	}
	return p.serveBlob(ex, pl)
}
