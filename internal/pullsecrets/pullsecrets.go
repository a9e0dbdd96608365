// Package pullsecrets finds the registry credentials of pods in their
// imagePullSecrets and service accounts, read from the Kubernetes API.
package pullsecrets

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Keychains finds the registry credentials of a pod: its imagePullSecrets
// and its service account's. Where RBAC allows list and watch they come from
// informer caches, so an admission never waits on the API server; where it
// allows only get (the original chart's rules) each is read when a copy
// needs it, as the original did; one the rules refuse is skipped.
type Keychains struct {
	client    kubernetes.Interface
	namespace string
	names     []string
	resync    time.Duration
	log       *slog.Logger

	// Set by Start.
	secretAccess, accountAccess access
	secrets                     []cache.SharedIndexInformer // one per field selector
	accounts                    cache.SharedIndexInformer
	got                         *getCache
}

// New reads the pull secrets and service accounts of namespace
// ("" for all). Cached, only the two docker secret types are listed and only
// what lookups need is kept, so the cache stays small on clusters with many
// secrets. With names, only secrets of those names are read, one watch per
// name: RBAC's resourceNames allows list and watch only with a metadata.name
// field selector. Call Start before use.
func New(client kubernetes.Interface, namespace string, resync time.Duration, log *slog.Logger, names ...string) *Keychains {
	if log == nil {
		log = slog.Default()
	}
	return &Keychains{client: client, namespace: namespace, names: names, resync: resync, log: log, got: newGetCache(getTTL)}
}

// selectors are the field selectors of the secret informers.
func (p *Keychains) selectors() []string {
	var out []string
	if len(p.names) == 0 {
		for _, typ := range []corev1.SecretType{corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg} {
			out = append(out, fields.OneTermEqualSelector("type", string(typ)).String())
		}
	}
	for _, n := range p.names {
		out = append(out, fields.OneTermEqualSelector("metadata.name", n).String())
	}
	return out
}

// Start finds what RBAC allows (logging it once when that is less than
// list and watch), then runs the informers it allows until ctx ends.
func (p *Keychains) Start(ctx context.Context) {
	p.secretAccess, p.accountAccess = p.probe(ctx)
	if p.secretAccess == accessWatch {
		for _, sel := range p.selectors() {
			inf := coreinformers.NewFilteredSecretInformer(p.client, p.namespace, p.resync, cache.Indexers{},
				func(o *metav1.ListOptions) { o.FieldSelector = sel })
			_ = inf.SetTransform(trimSecret)
			p.secrets = append(p.secrets, inf)
		}
	}
	if p.accountAccess == accessWatch {
		p.accounts = coreinformers.NewFilteredServiceAccountInformer(p.client, p.namespace, p.resync, cache.Indexers{}, nil)
		_ = p.accounts.SetTransform(trimServiceAccount)
	}
	p.logAccess()
	for _, inf := range p.informers() {
		go inf.RunWithContext(ctx)
	}
}

// WaitForSync waits until the caches in use are filled or ctx ends.
func (p *Keychains) WaitForSync(ctx context.Context) error {
	var synced []cache.InformerSynced
	for _, inf := range p.informers() {
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("pull secret caches not synced: %w", context.Cause(ctx))
	}
	return nil
}

func (p *Keychains) informers() []cache.SharedIndexInformer {
	out := append([]cache.SharedIndexInformer(nil), p.secrets...)
	if p.accounts != nil {
		out = append(out, p.accounts)
	}
	return out
}

// Keychain returns the credentials of the named secrets and then the
// service account's, as one kubelet-style keyring; nil when there are none.
// Read with get, they are read on the keychain's first use, in the copy,
// not in the admission. Missing or malformed secrets are logged and skipped.
func (p *Keychains) Keychain(namespace string, names []string, serviceAccount string) authn.Keychain {
	if p == nil {
		return nil
	}
	if p.secretAccess != accessWatch || p.accountAccess != accessWatch {
		return &lazyKeychain{p: p, namespace: namespace, names: names, serviceAccount: serviceAccount}
	}
	return p.keyring(context.Background(), namespace, names, serviceAccount)
}

// keyring reads the secrets of a pod now.
func (p *Keychains) keyring(ctx context.Context, namespace string, names []string, serviceAccount string) authn.Keychain {
	all := append([]string(nil), names...)
	if serviceAccount != "" {
		if sa := p.serviceAccount(ctx, namespace, serviceAccount); sa != nil {
			for _, r := range sa.ImagePullSecrets {
				all = append(all, r.Name)
			}
		}
	}
	var kr keyring
	seen := map[string]bool{}
	for _, n := range all {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		s := p.secret(ctx, namespace, n)
		if s == nil {
			p.log.Debug("pull secret not found", "namespace", namespace, "secret", n)
			continue
		}
		creds, err := parseSecret(s)
		if err != nil {
			p.log.Warn("pull secret unreadable", "namespace", namespace, "secret", n, "error", err)
		}
		kr.add(creds)
	}
	if kr.empty() {
		return nil
	}
	return &kr
}

func (p *Keychains) secret(ctx context.Context, namespace, name string) *corev1.Secret {
	if p.secretAccess != accessWatch {
		return p.getSecret(ctx, namespace, name)
	}
	for _, inf := range p.secrets {
		o, ok, err := inf.GetIndexer().GetByKey(namespace + "/" + name)
		if err == nil && ok {
			if s, ok := o.(*corev1.Secret); ok {
				return s
			}
		}
	}
	return nil
}

func (p *Keychains) serviceAccount(ctx context.Context, namespace, name string) *corev1.ServiceAccount {
	if p.accountAccess != accessWatch {
		return p.getServiceAccount(ctx, namespace, name)
	}
	o, ok, err := p.accounts.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	sa, _ := o.(*corev1.ServiceAccount)
	return sa
}

// trimSecret keeps the name, type and the docker config only.
func trimSecret(o any) (any, error) {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return o, nil
	}
	out := &corev1.Secret{Type: s.Type, Data: map[string][]byte{}}
	out.Name, out.Namespace, out.ResourceVersion = s.Name, s.Namespace, s.ResourceVersion
	for _, k := range []string{corev1.DockerConfigJsonKey, corev1.DockerConfigKey} {
		if v, ok := s.Data[k]; ok {
			out.Data[k] = v
		}
	}
	return out, nil
}

// trimServiceAccount keeps the name and the imagePullSecrets only.
func trimServiceAccount(o any) (any, error) {
	sa, ok := o.(*corev1.ServiceAccount)
	if !ok {
		return o, nil
	}
	out := &corev1.ServiceAccount{ImagePullSecrets: sa.ImagePullSecrets}
	out.Name, out.Namespace, out.ResourceVersion = sa.Name, sa.Namespace, sa.ResourceVersion
	return out, nil
}
