package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/singleflight"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
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
	p        *Proxy

	mu       sync.Mutex
	anon     map[string]*upstream          // per source registry
	verdicts *ttlcache.Cache[string, bool] // repo -> private
	grants   *ttlcache.Cache[string, bool] // hash(repo, user, pass) -> accepted
	flight   singleflight.Group
}

func newPrivacy(p *Proxy, mode policy.Private, shared []string) *privacy {
	return &privacy{allowAll: mode == policy.PrivateAllow, shared: shared, p: p, anon: map[string]*upstream{},
		verdicts: ttlcache.New[string, bool](maxVerdicts), grants: ttlcache.New[string, bool](maxVerdicts)}
}

// mayServe reports whether pl's content may be served to ex's request; when
// not, it has answered: 401 with a Basic challenge for a manifest (a client
// holding credentials for this host sends them; containerd 1.6 and 2.x
// without go on to the next host, the origin) and 404 for a blob ("not
// found" is what any containerd takes as "try the next host").
func (p *Proxy) mayServe(ex *exchange, pl plan) bool {
	if pl.src == nil {
		return true
	}
	ok, sent := p.privacy.permits(ex.r, *pl.src)
	if ok {
		return true
	}
	s := *pl.src
	ex.registry = pl.registry
	p.log.Info("private image refused to a pull without accepted credentials",
		"image", s.String(), "ref", ex.call.ref, "credentials", sent)
	if ex.call.kind == kindBlobs {
		writeError(ex.w, ex.r, newError(http.StatusNotFound, codeBlobUnknown,
			"blob unknown to this proxy: %s is private, pull it from its registry", s))
		return false
	}
	ex.w.Header().Set("WWW-Authenticate", `Basic realm="k8s-image-swapper"`)
	writeError(ex.w, ex.r, newError(http.StatusUnauthorized, codeUnauthorized,
		"%s is private: send credentials its registry accepts, or pull it from there", s))
	return false
}

// permits reports whether s's content (or its name and tags) may be given
// to r, and whether r sent credentials.
func (pv *privacy) permits(r *http.Request, s source) (ok, sent bool) {
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

func (pv *privacy) isShared(s source) bool {
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
func (pv *privacy) isPrivate(ctx context.Context, s source) bool {
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
	timer := time.NewTimer(min(privacyWait, pv.p.opts.UpstreamTimeout))
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
func (pv *privacy) undecided(key string, s source) bool {
	v := pv.holdsCredentials(s)
	pv.verdicts.Add(key, v, undecidedTTL)
	return v
}

// accepts reports whether the source accepts user:pass for the repository
// (asked once per grantTTL); only a 2xx answer counts.
func (pv *privacy) accepts(ctx context.Context, s source, user, pass string) bool {
	h := sha256.Sum256([]byte(s.String() + "\x00" + user + "\x00" + pass))
	key := hex.EncodeToString(h[:])
	if v, ok := pv.grants.Get(key); ok {
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, pv.p.opts.UpstreamTimeout)
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
func (pv *privacy) ask(ctx context.Context, s source, a authn.Authenticator) int {
	var u *upstream
	var err error
	if a == authn.Anonymous {
		u, err = pv.anonUpstream(s.registry)
	} else {
		u, err = pv.newUpstream(s.registry, a)
	}
	if err != nil {
		return 0
	}
	resp, err := u.do(ctx, http.MethodGet, s.repo, "tags", "list?n=1", nil)
	if err != nil {
		if ue, ok := asUpstreamError(err); ok {
			return ue.status
		}
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (pv *privacy) anonUpstream(registry string) (*upstream, error) {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if u, ok := pv.anon[registry]; ok {
		return u, nil
	}
	u, err := pv.newUpstream(registry, authn.Anonymous)
	if err != nil {
		return nil, err
	}
	pv.anon[registry] = u
	return u, nil
}

func (pv *privacy) newUpstream(registry string, a authn.Authenticator) (*upstream, error) {
	o := pv.p.opts
	reg, err := name.NewRegistry(registry, o.Sources.NameOptions(registry)...)
	if err != nil {
		return nil, err
	}
	return &upstream{
		role: roleSource, label: registry, reg: reg,
		auth:    func(context.Context) (authn.Authenticator, error) { return a, nil },
		base:    o.Transport,
		follow:  true,
		timeout: o.UpstreamTimeout,
		sem:     make(chan struct{}, o.MaxConcurrent),
		repos:   newRepoTransports(),
	}, nil
}

// holdsCredentials reports whether the proxy pulls from s's registry with
// credentials of its own.
func (pv *privacy) holdsCredentials(s source) bool {
	reg, err := name.NewRegistry(s.registry, pv.p.opts.Sources.NameOptions(s.registry)...)
	if err != nil {
		return true
	}
	a, err := pv.p.keychain.Resolve(reg)
	return err != nil || a != authn.Anonymous
}

// codeUnauthorized is the spec's code for a request without accepted credentials.
const codeUnauthorized = "UNAUTHORIZED"

func asUpstreamError(err error) (*upstreamError, bool) {
	var ue *upstreamError
	ok := errors.As(err, &ue)
	return ue, ok
}
