// Package tokenreview lets through only requests that carry the bearer
// token of an allowed caller: a Kubernetes ServiceAccount token issued for
// one audience, checked with the API server's TokenReview, as the kubelet
// and kube-rbac-proxy check theirs. The hub's API uses it, so that only the
// webhook can have the hub copy an image with the hub's own credentials.
package tokenreview

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

var (
	// ErrUnauthenticated: no token, or one the API server does not accept
	// for the audience (401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: a valid token of a caller not allowed (403).
	ErrForbidden = errors.New("forbidden")
)

// An answer is kept this long: a deleted ServiceAccount's token is refused
// within a minute (the API server's own webhook token cache keeps two), and
// a refusal is asked again after a few seconds, for a token the API server
// had not yet seen the ServiceAccount of.
const (
	acceptedTTL = time.Minute
	refusedTTL  = 5 * time.Second
)

// Reviewer checks tokens for one audience against a set of allowed callers
// (usernames, system:serviceaccount:NAMESPACE:NAME).
type Reviewer struct {
	reviews  authv1client.TokenReviewInterface
	audience string
	allowed  []string
	cache    *ttlcache.Cache[[sha256.Size]byte, answer]
	log      *slog.Logger
}

type answer struct {
	user string
	err  error
}

// New checks tokens with reviews (a clientset's AuthenticationV1().TokenReviews()).
func New(reviews authv1client.TokenReviewInterface, audience string, allowed []string, log *slog.Logger) *Reviewer {
	return &Reviewer{reviews: reviews, audience: audience, allowed: allowed,
		cache: ttlcache.New[[sha256.Size]byte, answer](4096), log: log}
}

// Check tells who holds token: an error wrapping ErrUnauthenticated or
// ErrForbidden when the caller may not ask, any other when the API server
// could not say (not kept: asked again next time).
func (v *Reviewer) Check(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	// The token itself is not kept, only its hash.
	key := sha256.Sum256([]byte(token))
	if a, ok := v.cache.Get(key); ok {
		return a.user, a.err
	}
	tr, err := v.reviews.Create(ctx, &authv1.TokenReview{Spec: authv1.TokenReviewSpec{
		Token: token, Audiences: []string{v.audience}}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token review: %w", err)
	}
	a := v.judge(tr.Status)
	ttl := acceptedTTL
	if a.err != nil {
		ttl = refusedTTL
	}
	v.cache.Set(key, a, ttl)
	return a.user, a.err
}

func (v *Reviewer) judge(s authv1.TokenReviewStatus) answer {
	switch {
	case !s.Authenticated:
		return answer{err: fmt.Errorf("%w: %s", ErrUnauthenticated, cmp.Or(s.Error, "token not accepted"))}
	case !slices.Contains(s.Audiences, v.audience):
		// An API server that ignores audiences answers for its own.
		return answer{err: fmt.Errorf("%w: token not issued for audience %q", ErrUnauthenticated, v.audience)}
	case !slices.Contains(v.allowed, s.User.Username):
		return answer{user: s.User.Username, err: fmt.Errorf("%w: %s may not ask", ErrForbidden, s.User.Username)}
	}
	return answer{user: s.User.Username}
}

// Require serves next only requests with the token of an allowed caller;
// others get 401 (with a Bearer challenge), 403, or 503 when the API server
// cannot tell, each with {"error": "..."}.
func (v *Reviewer) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, err := v.Check(r.Context(), bearer(r.Header.Get("Authorization")))
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		status := http.StatusServiceUnavailable
		switch {
		case errors.Is(err, ErrUnauthenticated):
			status = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+v.audience+`"`)
		case errors.Is(err, ErrForbidden):
			status = http.StatusForbidden
		}
		v.log.Warn("request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "user", user, "status", status, "error", err)
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(append(b, '\n'))
	})
}

// bearer is the token of an Authorization header, "" without one.
func bearer(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
