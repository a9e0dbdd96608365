package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/singleflight"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

const (
	// verdictTTL is how long a source's answer "private or not" stands.
	verdictTTL = 10 * time.Minute
	// grantTTL is how long credentials the source accepted stand: short, so
	// revoked access ends soon.
	grantTTL = time.Minute
	// privacyWait bounds how long a pull waits for the source's answer; a
	// hung source must not stall pulls the target can serve.
	privacyWait = 3 * time.Second
	// undecidedTTL is how long the verdict stands when the source could not
	// be asked.
	undecidedTTL = 30 * time.Second
	maxVerdicts  = 4096
)

// privacy decides whether a source repository's content may be served to
// a request: by asking the source, anonymously, whether it serves the
// repository to anyone (GET tags/list: neither a manifest nor a blob, so it
// counts against no pull limit), and, for a private one, whether it
// accepts the request's Basic credentials.
type privacy struct {
	allowAll bool
	shared   []string // path.Match globs on host/repo
	sources  *fetch.Sources
	timeout  time.Duration

	mu       sync.Mutex
	anon     map[string]*upstream.Client   // per source registry
	verdicts *ttlcache.Cache[string, bool] // repo -> private
	grants   *ttlcache.Cache[string, bool] // hash(repo, user, pass) -> accepted
	flight   singleflight.Group
}

func newPrivacy(p *Proxy, mode policy.Private, shared []string) *privacy {
	return &privacy{allowAll: mode == policy.PrivateAllow, shared: shared, sources: p.sources, timeout: p.opts.UpstreamTimeout,
		anon: map[string]*upstream.Client{}, verdicts: ttlcache.New[string, bool](maxVerdicts), grants: ttlcache.New[string, bool](maxVerdicts)}
}

// mayServe refuses pl's content to ex's request unless it may have it:
// with 401 and a Basic challenge for a manifest (a client holding
// credentials for this host sends them; containerd 1.6 and 2.x without go
// on to the next host, the origin) and 404 for a blob ("not found" is what
// any containerd takes as "try the next host").
func (p *Proxy) mayServe(ex *exchange, pl plan) error {
	if pl.src == nil {
		return nil
	}
	ok, sent := p.privacy.permits(ex.r, *pl.src)
	if ok {
		return nil
	}
	s := *pl.src
	p.log.Info("private image refused to a pull without accepted credentials",
		"image", s.String(), "ref", ex.call.Ref, "credentials", sent)
	if ex.call.Kind == registry.Blobs {
		return newError(http.StatusNotFound, codeBlobUnknown, "blob unknown to this proxy: %s is private, pull it from its registry", s)
	}
	return basicChallenge(codeUnauthorized, "%s is private: send credentials its registry accepts, or pull it from there", s)
}

// permits reports whether s's content (or its name and tags) may be given
// to r, and whether r sent credentials.
func (pv *privacy) permits(r *http.Request, s fetch.Source) (ok, sent bool) {
	if pv.allowAll || pv.isShared(s) {
		return true, false
	}
	ctx := r.Context()
	if !pv.isPrivate(ctx, s) {
		return true, false
	}
	user, pass, sent := r.BasicAuth()
	return sent && pv.accepts(ctx, s, user, pass), sent
}

func (pv *privacy) isShared(s fetch.Source) bool {
	for _, g := range pv.shared {
		if ok, _ := path.Match(g, s.String()); ok {
			return true
		}
	}
	return false
}

// isPrivate asks the source (once per verdictTTL) whether it serves the
// repository anonymously. When the source cannot say in time, the
// repository counts as private if the proxy holds credentials for the
// registry: what it could fetch may have needed them.
func (pv *privacy) isPrivate(ctx context.Context, s fetch.Source) bool {
	key := s.String()
	if v, ok := pv.verdicts.Get(key); ok {
		return v
	}
	ch := pv.flight.DoChan("private "+key, func() (any, error) {
		status := pv.ask(context.WithoutCancel(ctx), s, authn.Anonymous)
		switch status {
		case http.StatusUnauthorized, http.StatusForbidden:
			pv.verdicts.Set(key, true, verdictTTL)
			return true, nil
		case http.StatusOK:
			pv.verdicts.Set(key, false, verdictTTL)
			return false, nil
		}
		return pv.undecided(key, s), nil
	})
	timer := time.NewTimer(min(privacyWait, pv.timeout))
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.Val.(bool)
	case <-timer.C:
		return pv.undecided(key, s)
	case <-ctx.Done():
		return true
	}
}

// undecided is the verdict while the source cannot say, kept a little
// while so a hung source delays one request per repository, not every one.
func (pv *privacy) undecided(key string, s fetch.Source) bool {
	v := pv.sources.HoldsCredentials(s.Registry)
	pv.verdicts.Add(key, v, undecidedTTL)
	return v
}

// accepts reports whether the source accepts user:pass for the repository
// (asked once per grantTTL); only a 2xx answer counts.
func (pv *privacy) accepts(ctx context.Context, s fetch.Source, user, pass string) bool {
	h := sha256.Sum256([]byte(s.String() + "\x00" + user + "\x00" + pass))
	key := hex.EncodeToString(h[:])
	if v, ok := pv.grants.Get(key); ok {
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, pv.timeout)
	defer cancel()
	status := pv.ask(ctx, s, &authn.Basic{Username: user, Password: pass})
	switch {
	case status >= 200 && status < 300:
		pv.grants.Set(key, true, grantTTL)
		return true
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		pv.grants.Set(key, false, grantTTL)
	}
	return false
}

// ask lists one tag of the repository at the source as a and returns the
// status; 0 when there was no answer.
func (pv *privacy) ask(ctx context.Context, s fetch.Source, a authn.Authenticator) int {
	var c *upstream.Client
	var err error
	if a == authn.Anonymous {
		c, err = pv.anonClient(s.Registry)
	} else {
		c, err = pv.sources.Client(s.Registry, a)
	}
	if err != nil {
		return 0
	}
	resp, err := c.Do(ctx, http.MethodGet, registry.Path{Repo: s.Repo, Kind: registry.Tags, Ref: "list", Query: "n=1"}, nil)
	if err != nil {
		return upstream.Status(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (pv *privacy) anonClient(registry string) (*upstream.Client, error) {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if c, ok := pv.anon[registry]; ok {
		return c, nil
	}
	c, err := pv.sources.Client(registry, authn.Anonymous)
	if err != nil {
		return nil, err
	}
	pv.anon[registry] = c
	return c, nil
}
