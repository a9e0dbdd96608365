package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/singleflight"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

const (
	// publicTTL is how long a repository's "served anonymously or not" stands.
	publicTTL = 5 * time.Minute
	// grantTTL is how long an answer for one set of credentials stands:
	// short, so that revoked access ends soon.
	grantTTL = time.Minute
	// accessTimeout bounds one question to a source: an admission waits on it.
	accessTimeout = 3 * time.Second
	maxAccess     = 4096
	// staleTTL is how long an answer stands in for one the source cannot
	// give (an outage, a rate limit): a mirror is for those times, and a
	// public image must stay swapped through them.
	staleTTL = 24 * time.Hour
)

// Access answers who may read a source image, with a HEAD of its manifest
// at the source: anonymously (per repository) and with a pod's credentials
// (per credentials and image). Answers are kept briefly; errors are not,
// and while the source errs the last answer it gave stands, for a day.
type Access struct {
	sources *auth.Sources
	rt      http.RoundTripper
	public  *ttlcache.Cache[string, bool]
	grants  *ttlcache.Cache[string, bool]
	stale   *ttlcache.Cache[string, bool] // the last answers, by "public\x00" or "grant\x00" key
	flight  singleflight.Group
}

// NewAccess asks sources (nil: all over HTTPS) through rt (nil: the
// engine's default).
func NewAccess(sources *auth.Sources, rt http.RoundTripper) *Access {
	if rt == nil {
		rt = target.NewTransport(false)
	}
	return &Access{sources: sources, rt: rt,
		public: ttlcache.New[string, bool](maxAccess), grants: ttlcache.New[string, bool](maxAccess),
		stale: ttlcache.New[string, bool](maxAccess)}
}

// Access is a read check that reaches sources as the engine's copies do,
// without the retries: an admission cannot wait for them.
func (e *Engine) Access() *Access { return NewAccess(e.opts.Sources, e.opts.SourceTransport) }

// Public tells whether src's source serves it without credentials. A 401
// or 403 is "no"; an answer that says neither is an error.
func (a *Access) Public(ctx context.Context, src reference.Named) (bool, error) {
	key := src.Name()
	if v, ok := a.public.Get(key); ok {
		return v, nil
	}
	v, err, _ := a.flight.Do("public\x00"+key, func() (any, error) {
		return a.ask(ctx, src, authn.Anonymous, "public\x00"+key, a.public, key, publicTTL)
	})
	if err != nil {
		return false, err
	}
	return v.(bool), nil
}

// Readable tells whether kc's credentials for src's registry read src at
// its source. No credentials for it is "no", without asking.
func (a *Access) Readable(ctx context.Context, src reference.Named, kc authn.Keychain) (bool, error) {
	if kc == nil {
		return false, nil
	}
	ref, err := a.ref(src)
	if err != nil {
		return false, err
	}
	au, err := authn.Resolve(ctx, kc, ref.Context())
	if err != nil {
		return false, fmt.Errorf("credentials for %s: %w", src, err)
	}
	if au == authn.Anonymous {
		return false, nil
	}
	cfg, err := authn.Authorization(ctx, au)
	if err != nil {
		return false, fmt.Errorf("credentials for %s: %w", src, err)
	}
	if *cfg == (authn.AuthConfig{}) {
		return false, nil
	}
	key := grantKey(src, cfg)
	if v, ok := a.grants.Get(key); ok {
		return v, nil
	}
	v, err, _ := a.flight.Do("grant\x00"+key, func() (any, error) {
		return a.ask(ctx, src, authn.FromConfig(*cfg), "grant\x00"+key, a.grants, key, grantTTL)
	})
	if err != nil {
		return false, err
	}
	return v.(bool), nil
}

// ask asks the source and keeps the answer in fresh for ttl, and as the
// last answer; when the source cannot answer, the last answer stands.
func (a *Access) ask(ctx context.Context, src reference.Named, au authn.Authenticator, staleKey string,
	fresh *ttlcache.Cache[string, bool], key string, ttl time.Duration) (bool, error) {
	ok, err := a.head(ctx, src, au)
	if err != nil {
		if last, known := a.stale.Get(staleKey); known {
			return last, nil
		}
		return false, err
	}
	fresh.Set(key, ok, ttl)
	a.stale.Set(staleKey, ok, staleTTL)
	return ok, nil
}

// grantKey names one image and one set of credentials, without keeping them.
func grantKey(src reference.Named, c *authn.AuthConfig) string {
	h := sha256.New()
	for _, s := range []string{src.String(), c.Username, c.Password, c.Auth, c.IdentityToken, c.RegistryToken} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (a *Access) ref(src reference.Named) (name.Reference, error) {
	ref, err := name.ParseReference(sourceString(src), a.sources.NameOptions(reference.Domain(src))...)
	if err != nil {
		return nil, fmt.Errorf("source reference %s: %w", src, err)
	}
	return ref, nil
}

// head tells whether the source serves src's manifest to au: true for a
// 2xx, false for a refusal (authDenied), an error otherwise. It does not
// end with the caller: callers waiting on the same question share it.
func (a *Access) head(ctx context.Context, src reference.Named, au authn.Authenticator) (bool, error) {
	ref, err := a.ref(src)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accessTimeout)
	defer cancel()
	_, err = remote.Head(ref, remote.WithContext(ctx), remote.WithAuth(au), remote.WithTransport(a.rt),
		remote.WithRetryStatusCodes(), remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	switch {
	case err == nil:
		return true, nil
	case authDenied(err):
		return false, nil
	case au == authn.Anonymous && notFound(err):
		// Registries refuse a private image to anonymous clients with
		// 401/403 (Docker Hub, ECR, Artifact Registry, GHCR, Harbor, Quay);
		// a 404 says there is nothing (yet) to keep from anyone, and the
		// swap policy decides, as it did before this check.
		return true, nil
	}
	return false, fmt.Errorf("ask %s who may read it: %w", src, err)
}

// notFound tells whether err is a registry answering that there is no such manifest.
func notFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// authDenied tells whether err is a registry refusing the credentials
// sent (none, or the wrong ones): 401, 403, UNAUTHORIZED or DENIED.
func authDenied(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.UnauthorizedErrorCode || d.Code == transport.DeniedErrorCode {
			return true
		}
	}
	return false
}
