// Package fetch is the source side of the proxy and of the copy engine:
// one upstream client per source registry, blobs through one on-disk spool,
// manifests by digest in a cache, tags resolved at most once per TTL, every
// body checked against its digest. However many pullers and copies ask for
// one blob or manifest at once, the source is asked once.
//
// cmd builds it first and hands it to the proxy (which serves from it) and
// to the copy engine (whose source requests go through Transport), so a
// copy that a pull triggered reads what the pull fetched.
package fetch

import (
	"cmp"
	"context"
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
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"

	_ "crypto/sha512" // sha512 digests are valid in the OCI spec
)

// Options configure Sources. A zero value takes its default (see defaults).
type Options struct {
	// Credentials are the config's source credentials and plain-HTTP hosts.
	Credentials *auth.Sources
	// Keychain adds source credentials (cloud registries); tried first.
	Keychain authn.Keychain
	// Transport reaches sources; default target.NewTransport(false).
	Transport http.RoundTripper
	// Timeout bounds the wait for a source's response headers and each
	// stalled read (default upstream.DefaultTimeout).
	Timeout time.Duration
	// MaxConcurrent bounds requests at once to one source (default
	// upstream.DefaultMaxConcurrent).
	MaxConcurrent int
	// TagTTL is how long a source's answer for a tag is trusted (default
	// policy.DefaultTagTTL).
	TagTTL time.Duration
	// SpoolDir holds blobs while they stream from sources; default a new
	// temporary folder, removed by Close.
	SpoolDir string
	// SpoolRetain keeps a fetched blob for the copy and late pullers (default 10m).
	SpoolRetain time.Duration
	// SpoolMaxBytes bounds the finished blobs kept (default 2 GiB).
	SpoolMaxBytes int64
	// Relay, when set, is asked before the sources (see Relay).
	Relay  Relay
	Logger *slog.Logger
}

// defaults fills what o leaves zero: every default of the fetch layer.
func (o Options) defaults() Options {
	o.Timeout = cmp.Or(o.Timeout, upstream.DefaultTimeout)
	o.MaxConcurrent = cmp.Or(o.MaxConcurrent, upstream.DefaultMaxConcurrent)
	o.TagTTL = cmp.Or(o.TagTTL, policy.DefaultTagTTL)
	o.SpoolRetain = cmp.Or(o.SpoolRetain, 10*time.Minute)
	o.SpoolMaxBytes = cmp.Or(o.SpoolMaxBytes, 2<<30)
	if o.Transport == nil {
		o.Transport = target.NewTransport(false)
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	return o
}

// Source is a repository in a source registry.
type Source struct {
	Registry string // canonical host: docker.io, ghcr.io, 127.0.0.1:5000
	Repo     string // path inside it: library/nginx
}

func (s Source) String() string { return s.Registry + "/" + s.Repo }

// Named is the source as a reference, for the copy engine.
func (s Source) Named() (reference.Named, error) { return reference.ParseNormalizedNamed(s.String()) }

// Sources fetches from source registries; see the package comment.
type Sources struct {
	opts     Options
	log      *slog.Logger
	keychain authn.Keychain

	mu      sync.Mutex
	clients map[string]*upstream.Client // by registry, made on first use

	tags      *ttlcache.Cache[string, Descriptor] // a source's digest for a tag, kept for TagTTL
	manifests *manifestCache
	flight    singleflight.Group
	spool     *spool

	tempSpool string // spool folder to remove on Close
	stop      chan struct{}
	closeOnce sync.Once
}

// New prepares the spool; Close frees it.
func New(o Options) (*Sources, error) {
	o = o.defaults()
	s := &Sources{
		opts:      o,
		log:       o.Logger,
		keychain:  keychain(o.Keychain, o.Credentials),
		clients:   map[string]*upstream.Client{},
		tags:      ttlcache.New[string, Descriptor](10_000),
		manifests: newManifestCache(16 << 20),
		stop:      make(chan struct{}),
	}
	dir := o.SpoolDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "k8s-image-swapper-spool-"); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.tempSpool = dir
	} else if err := prepareSpool(dir); err != nil {
		return nil, err
	}
	s.spool = newSpool(dir, o.SpoolRetain, o.SpoolMaxBytes, o.Logger)
	go s.sweep()
	return s, nil
}

func keychain(extra authn.Keychain, creds *auth.Sources) authn.Keychain {
	var out []authn.Keychain
	if extra != nil {
		out = append(out, extra)
	}
	if creds != nil {
		out = append(out, creds)
	}
	if len(out) == 0 {
		out = append(out, &auth.Sources{})
	}
	return authn.NewMultiKeychain(out...)
}

// prepareSpool creates dir and removes blobs a previous run left behind.
func prepareSpool(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "blob-*"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	return nil
}

func (s *Sources) sweep() {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.spool.sweep()
		}
	}
}

// Close drops the spool. Transfers still running end with their readers.
func (s *Sources) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.spool.close()
		if s.tempSpool != "" {
			_ = os.RemoveAll(s.tempSpool)
		}
	})
	return nil
}

// client returns the client of a source registry, with the configured
// credentials, made on first use.
func (s *Sources) client(registry string) (*upstream.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[registry]; ok {
		return c, nil
	}
	c, err := s.newClient(registry, func(reg name.Registry) (authn.Authenticator, error) { return s.keychain.Resolve(reg) })
	if err != nil {
		return nil, err
	}
	s.clients[registry] = c
	return c, nil
}

// Client is a new client of a source registry that sends a's credentials
// (or none: authn.Anonymous), to ask what the source allows them.
func (s *Sources) Client(registry string, a authn.Authenticator) (*upstream.Client, error) {
	return s.newClient(registry, func(name.Registry) (authn.Authenticator, error) { return a, nil })
}

func (s *Sources) newClient(registry string, auth func(name.Registry) (authn.Authenticator, error)) (*upstream.Client, error) {
	reg, err := s.registry(registry)
	if err != nil {
		return nil, err
	}
	return upstream.New(upstream.Options{
		Role:            upstream.Source,
		Registry:        reg,
		Name:            registry,
		Auth:            func(context.Context) (authn.Authenticator, error) { return auth(reg) },
		Transport:       s.opts.Transport,
		FollowRedirects: true,
		Timeout:         s.opts.Timeout,
		MaxConcurrent:   s.opts.MaxConcurrent,
	}), nil
}

func (s *Sources) registry(registry string) (name.Registry, error) {
	reg, err := name.NewRegistry(registry, s.opts.Credentials.NameOptions(registry)...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("source registry %s: %w", registry, err)
	}
	return reg, nil
}

// HoldsCredentials reports whether pulls from registry go with credentials
// of the proxy's own (from the config or a cloud).
func (s *Sources) HoldsCredentials(registry string) bool {
	reg, err := s.registry(registry)
	if err != nil {
		return true
	}
	a, err := s.keychain.Resolve(reg)
	return err != nil || a != authn.Anonymous
}
