// Package proxy is the node proxy: a pull-through OCI registry that
// containerd on every node uses as a mirror (hosts.toml). It serves the OCI
// distribution read API, routing each request by the ?ns=<registry>
// containerd adds: from the target's copy when it has one, else from the
// source while the copy into the target is triggered. A target reference
// whose image is missing is served from its source. Blobs from sources are
// streamed, checked against their digests and fetched once however many
// nodes' pulls ask at the same time.
package proxy

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/singleflight"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"

	_ "crypto/sha512" // sha512 digests are valid in the OCI spec
)

// Mirror is what the proxy needs of the copy engine (*mirror.Engine).
type Mirror interface {
	Submit(req mirror.Request) (*mirror.Job, error)
	Forget(src reference.Named)
}

// DefaultAddress is proxy.listenAddress's default: loopback, for containerd
// on the same node.
const DefaultAddress = "127.0.0.1:7439"

// DefaultRegistries are the public registries served when proxy.registries
// is not set.
var DefaultRegistries = []string{
	"docker.io", "ghcr.io", "quay.io", "registry.k8s.io", "gcr.io", "public.ecr.aws", "mcr.microsoft.com",
}

// Options configure a Proxy. A zero value takes its default (see defaults).
type Options struct {
	Target target.Target
	// Mirror copies images into the target; nil never copies.
	Mirror Mirror
	// Registries are the source registries served (host[:port]); any other
	// is refused. Docker Hub's names (index.docker.io, ...) are one.
	Registries []string
	// OnMiss is passthrough (serve the source at once; the default) or wait
	// (wait up to WaitTimeout for the copy, then serve the target).
	OnMiss          policy.OnMiss
	WaitTimeout     time.Duration // default 30s
	TagTTL          time.Duration // how long a source's answer for a tag is trusted; default 5m
	UpstreamTimeout time.Duration // until an upstream's response headers, and longest stalled read; default 30s
	// MaxConcurrent bounds requests at once to one source (default 32); the
	// target gets four times as many.
	MaxConcurrent int
	// Sources has the config's source credentials and plain-HTTP hosts.
	Sources *auth.Sources
	// Keychain adds source credentials (cloud registries); tried first.
	Keychain authn.Keychain
	// Transport reaches sources; default a clone of http.DefaultTransport.
	Transport http.RoundTripper
	// SpoolDir holds blobs while they stream from sources; default a new
	// temporary folder, removed by Close.
	SpoolDir string
	// SpoolRetain keeps a fetched blob for the copy and late pullers (default 10m).
	SpoolRetain time.Duration
	// SpoolMaxBytes bounds the finished blobs kept (default 2 GiB).
	SpoolMaxBytes int64
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

// Proxy serves the OCI distribution read API; see the package comment.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	mapper   imageref.Mapper
	target   *upstream
	store    http.Handler     // the local target's full API; nil for others
	push     *pushAuth        // nil: no client writes
	ledger   target.TagLedger // the tags copies wrote; nil when the target keeps none
	mirror   Mirror
	allowed  map[string]bool
	keychain authn.Keychain

	mu      sync.Mutex
	sources map[string]*upstream

	tags      *ttlcache.Cache[string, desc] // a source's digest for a tag, kept for TagTTL
	manifests *manifestCache
	flight    singleflight.Group
	spool     *spool
	copies    *copies
	privacy   *privacy

	tempSpool string // spool folder to remove on Close
	stop      chan struct{}
	closeOnce sync.Once
}

// New checks o and returns a proxy; Close frees its spool.
func New(o Options) (*Proxy, error) {
	if o.Target == nil {
		return nil, errors.New("proxy: no target")
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
		target: &upstream{
			role: roleTarget, label: mapper.Host, reg: reg, auth: t.Authenticator, base: t.Transport(),
			timeout: o.UpstreamTimeout, sem: make(chan struct{}, 4*o.MaxConcurrent), repos: newRepoTransports(),
		},
		mirror:    o.Mirror,
		allowed:   map[string]bool{},
		sources:   map[string]*upstream{},
		tags:      ttlcache.New[string, desc](10_000),
		manifests: newManifestCache(16 << 20),
		copies:    newCopies(),
		stop:      make(chan struct{}),
	}
	if s, ok := t.(interface{ Handler() http.Handler }); ok {
		p.store = s.Handler()
	}
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
	p.keychain = authn.NewMultiKeychain(keychains(o.Keychain, o.Sources)...)
	p.privacy = newPrivacy(p, o.Private, o.SharedRepositories)
	dir := o.SpoolDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "k8s-image-swapper-spool-"); err != nil {
			return nil, fmt.Errorf("proxy: spool: %w", err)
		}
		p.tempSpool = dir
	} else if err := prepareSpool(dir); err != nil {
		return nil, err
	}
	p.spool = newSpool(dir, o.SpoolRetain, o.SpoolMaxBytes, o.Logger)
	go p.sweep()
	return p, nil
}

// defaults fills what o leaves zero: every default of the proxy.
func (o Options) defaults() Options {
	o.WaitTimeout = cmp.Or(o.WaitTimeout, 30*time.Second)
	o.TagTTL = cmp.Or(o.TagTTL, policy.DefaultTagTTL)
	o.UpstreamTimeout = cmp.Or(o.UpstreamTimeout, 30*time.Second)
	o.SpoolRetain = cmp.Or(o.SpoolRetain, 10*time.Minute)
	o.MaxConcurrent = cmp.Or(o.MaxConcurrent, 32)
	o.SpoolMaxBytes = cmp.Or(o.SpoolMaxBytes, 2<<30)
	if o.Transport == nil {
		o.Transport = target.NewTransport(false)
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	return o
}

func keychains(extra authn.Keychain, sources *auth.Sources) []authn.Keychain {
	var out []authn.Keychain
	if extra != nil {
		out = append(out, extra)
	}
	if sources != nil {
		out = append(out, sources)
	}
	if len(out) == 0 {
		out = append(out, &auth.Sources{})
	}
	return out
}

// prepareSpool creates dir and removes blobs a previous run left behind.
func prepareSpool(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("proxy: spool: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "blob-*"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	return nil
}

func (p *Proxy) sweep() {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.spool.sweep()
		}
	}
}

// Close drops the spool. Transfers still running end with their clients.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.spool.close()
		if p.tempSpool != "" {
			_ = os.RemoveAll(p.tempSpool)
		}
	})
	return nil
}

// ServeHTTP serves /v2/ and everything under it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		p.serveBase(w, r)
		return
	}
	if isWrite(r) {
		p.serveWrite(w, r)
		return
	}
	c, ok := parseCall(r.URL.Path)
	if !ok {
		p.serveOther(w, r)
		return
	}
	ex := newExchange(w, r, c)
	defer p.done(ex)
	plans, herr := p.route(r.URL.Query().Get("ns"), c.name)
	if herr != nil {
		ex.registry = "unknown"
		writeError(ex.w, r, herr)
		return
	}
	for _, pl := range plans[:len(plans)-1] {
		if p.fromTargetOnly(ex, pl) {
			return
		}
	}
	pl := plans[len(plans)-1]
	if !p.mayServe(ex, pl) {
		return
	}
	ex.registry = pl.registry
	if c.kind == kindManifests {
		p.serveManifest(ex, pl)
	} else {
		p.serveBlob(ex, pl)
	}
}

// serveBase answers the API version check.
func (p *Proxy) serveBase(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, r, newError(http.StatusMethodNotAllowed, codeUnsupported, "method %s not allowed", r.Method))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
}

// serveOther serves the read APIs beyond manifests and blobs (tag lists,
// catalog, referrers) from a local target, which is then also a plain
// registry; other targets are not listed through the proxy.
func (p *Proxy) serveOther(w http.ResponseWriter, r *http.Request) {
	if p.store == nil {
		writeError(w, r, newError(http.StatusNotFound, codeUnsupported, "%s is not served by this proxy", r.URL.Path))
		return
	}
	p.serveListing(w, r)
}
