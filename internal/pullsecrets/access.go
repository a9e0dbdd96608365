package pullsecrets

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// access is how one kind of object can be read under the webhook's RBAC.
type access int

const (
	accessWatch access = iota // list and watch: an informer cache
	accessGet                 // get only (the original chart's rules): read when a copy needs it
	// accessNames: no list or watch, and no get of just any name; a rule
	// with resourceNames may still allow some, so each is tried with get,
	// as the original did, and a refused one is skipped.
	accessNames
)

func (a access) String() string {
	switch a {
	case accessWatch:
		return "list and watch"
	case accessGet:
		return "get only"
	default:
		return "no list, watch or get of any name"
	}
}

const (
	// probeTimeout bounds finding the rights at start.
	probeTimeout = 10 * time.Second
	// getTTL is how long a secret or service account read with get is kept.
	getTTL = time.Minute
	// getTimeout bounds the reads of one pod's secrets.
	getTimeout = 10 * time.Second
	// probeName names no secret or service account; a get of it tells
	// "allowed" (not found) from "forbidden".
	probeName = "k8s-image-swapper-rbac-probe"
)

// probe finds what the rules allow, asking as the lookups will. An answer
// other than "forbidden" (the API server down) counts as allowed: the
// informers then retry, and readiness waits for them, as before.
func (p *Keychains) probe(ctx context.Context) (secrets, accounts access) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	ns := p.namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	sc := p.client.CoreV1().Secrets(p.namespace)
	secrets = accessNames
	sel := p.selectors()[0]
	if canListWatch(ctx, func(o metav1.ListOptions) error { _, err := sc.List(ctx, o); return err },
		func(o metav1.ListOptions) error { return watchOnce(sc.Watch(ctx, o)) }, sel) {
		secrets = accessWatch
	} else {
		getName := probeName
		if len(p.names) > 0 {
			getName = p.names[0] // a names-only rule allows only these
		}
		if _, err := p.client.CoreV1().Secrets(ns).Get(ctx, getName, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
			secrets = accessGet
		}
	}
	ac := p.client.CoreV1().ServiceAccounts(p.namespace)
	accounts = accessNames
	if canListWatch(ctx, func(o metav1.ListOptions) error { _, err := ac.List(ctx, o); return err },
		func(o metav1.ListOptions) error { return watchOnce(ac.Watch(ctx, o)) }, "") {
		accounts = accessWatch
	} else if _, err := p.client.CoreV1().ServiceAccounts(ns).Get(ctx, probeName, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		accounts = accessGet
	}
	return secrets, accounts
}

func canListWatch(ctx context.Context, list, watch func(metav1.ListOptions) error, selector string) bool {
	timeout := int64(1)
	if err := list(metav1.ListOptions{FieldSelector: selector, Limit: 1}); apierrors.IsForbidden(err) {
		return false
	}
	return !apierrors.IsForbidden(watch(metav1.ListOptions{FieldSelector: selector, TimeoutSeconds: &timeout}))
}

// watchOnce closes a watch opened only to see whether it may be.
func watchOnce(w interface{ Stop() }, err error) error {
	if err == nil {
		w.Stop()
	}
	return err
}

// logAccess says once what the rights allow, when that is less than the
// informers want.
func (p *Keychains) logAccess() {
	if p.secretAccess == accessWatch && p.accountAccess == accessWatch {
		return
	}
	how := "each is read with get when a copy needs it, as the original did"
	if p.secretAccess == accessNames {
		how += "; a secret the rules refuse is skipped, and without any, copies use only the config's credentials"
	}
	p.log.Warn(fmt.Sprintf("pull secrets: RBAC allows secrets: %s, service accounts: %s (the chart grants list and watch; "+
		"the original chart granted get and watch, or nothing without secretReader.enabled): %s",
		p.secretAccess, p.accountAccess, how))
}

func (p *Keychains) getSecret(ctx context.Context, namespace, name string) *corev1.Secret {
	if len(p.names) > 0 && !slices.Contains(p.names, name) {
		return nil // not in the rule's resourceNames
	}
	o, err := p.got.get(ctx, "secret/"+namespace+"/"+name, func(ctx context.Context) (any, error) {
		s, err := p.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return trimSecret(s)
	})
	if err != nil {
		p.log.Warn("pull secret not read", "namespace", namespace, "secret", name, "error", err)
	}
	s, _ := o.(*corev1.Secret)
	return s
}

func (p *Keychains) getServiceAccount(ctx context.Context, namespace, name string) *corev1.ServiceAccount {
	o, err := p.got.get(ctx, "serviceaccount/"+namespace+"/"+name, func(ctx context.Context) (any, error) {
		sa, err := p.client.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return trimServiceAccount(sa)
	})
	if err != nil {
		p.log.Warn("service account not read", "namespace", namespace, "serviceAccount", name, "error", err)
	}
	sa, _ := o.(*corev1.ServiceAccount)
	return sa
}

// getCache keeps objects read with get for a while, and "not found" or
// "forbidden" too; other errors are not kept.
type getCache struct {
	ttl time.Duration
	m   *ttlcache.Cache[string, any]
}

func newGetCache(ttl time.Duration) *getCache {
	return &getCache{ttl: ttl, m: ttlcache.New[string, any](10_000)}
}

// get returns the object under key, fetching it when not kept; the error
// is one that is not kept (nil for not found and forbidden).
func (c *getCache) get(ctx context.Context, key string, fetch func(context.Context) (any, error)) (any, error) {
	if obj, ok := c.m.Get(key); ok {
		return obj, nil
	}
	obj, err := fetch(ctx)
	if err != nil {
		if !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) {
			return nil, err
		}
		obj = nil
	}
	c.m.Set(key, obj, c.ttl)
	return obj, nil
}

// lazyKeychain reads a pod's secrets on first use, in the copy.
type lazyKeychain struct {
	p                         *Keychains
	namespace, serviceAccount string
	names                     []string
	once                      sync.Once
	kc                        authn.Keychain
}

func (l *lazyKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return l.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain.
func (l *lazyKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	l.once.Do(func() {
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), getTimeout)
		defer cancel()
		l.kc = l.p.keyring(gctx, l.namespace, l.names, l.serviceAccount)
	})
	if l.kc == nil {
		return authn.Anonymous, nil
	}
	return l.kc.Resolve(r)
}
