package pullsecrets

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// keyring holds the registry credentials of a set of pull secrets and finds
// them for an image the way the kubelet does: keys may carry a path
// (registry.example.com/team), '*' globs whole host labels
// (*.registry.example.com), ports must be equal, and the most specific key
// wins. A nil or empty keyring resolves everything to anonymous.
type keyring struct {
	index []string // keys, reverse-sorted so longer paths come first
	creds map[string][]authn.AuthConfig
}

// dockerHubKey is the key Docker Hub's credentials have in a docker config.
const dockerHubKey = "index.docker.io"

// parseSecret reads the registry credentials of a kubernetes.io/dockerconfigjson
// or kubernetes.io/dockercfg secret, by registry key as written.
func parseSecret(s *corev1.Secret) (map[string]authn.AuthConfig, error) {
	if s == nil {
		return nil, errors.New("no secret")
	}
	var entries map[string]dockerConfigEntry
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		data, ok := s.Data[corev1.DockerConfigJsonKey]
		if !ok {
			return nil, fmt.Errorf("secret %s/%s has no %s key", s.Namespace, s.Name, corev1.DockerConfigJsonKey)
		}
		var cfg struct {
			Auths map[string]dockerConfigEntry `json:"auths"`
		}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("secret %s/%s: %s: %w", s.Namespace, s.Name, corev1.DockerConfigJsonKey, err)
		}
		entries = cfg.Auths
	case corev1.SecretTypeDockercfg:
		data, ok := s.Data[corev1.DockerConfigKey]
		if !ok {
			return nil, fmt.Errorf("secret %s/%s has no %s key", s.Namespace, s.Name, corev1.DockerConfigKey)
		}
		if err := json.Unmarshal(data, &entries); err != nil {
			return nil, fmt.Errorf("secret %s/%s: %s: %w", s.Namespace, s.Name, corev1.DockerConfigKey, err)
		}
	default:
		return nil, fmt.Errorf("secret %s/%s has type %q, want %s or %s", s.Namespace, s.Name, s.Type,
			corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg)
	}
	out := make(map[string]authn.AuthConfig, len(entries))
	var errs []error
	for key, e := range entries {
		ac, err := e.authConfig()
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %s/%s, registry %q: %w", s.Namespace, s.Name, key, err))
			continue
		}
		out[key] = ac
	}
	return out, errors.Join(errs...)
}

type dockerConfigEntry struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// authConfig decodes "auth" (base64 of user:password), which wins over
// username and password as it does in the kubelet.
func (e dockerConfigEntry) authConfig() (authn.AuthConfig, error) {
	ac := authn.AuthConfig{Username: e.Username, Password: e.Password,
		IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
	if e.Auth == "" {
		return ac, nil
	}
	raw, err := base64.StdEncoding.DecodeString(e.Auth)
	if err != nil {
		return ac, fmt.Errorf("auth is not base64: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return ac, errors.New("auth is not base64 of user:password")
	}
	ac.Username, ac.Password = user, pass
	return ac, nil
}

// add puts one secret's credentials in the keyring. Keys are normalised as
// the kubelet does: scheme dropped, /v1/ or /v2/ dropped, host[/path] kept.
func (k *keyring) add(creds map[string]authn.AuthConfig) {
	if k.creds == nil {
		k.creds = map[string][]authn.AuthConfig{}
	}
	keys := make([]string, 0, len(creds))
	for loc := range creds {
		keys = append(keys, loc)
	}
	sort.Strings(keys) // a stable order for equal keys within one secret
	for _, loc := range keys {
		key, ok := normaliseKey(loc)
		if !ok {
			continue
		}
		if _, seen := k.creds[key]; !seen {
			k.index = append(k.index, key)
		}
		k.creds[key] = append(k.creds[key], creds[loc])
	}
	sort.Sort(sort.Reverse(sort.StringSlice(k.index)))
}

func normaliseKey(loc string) (string, bool) {
	v := loc
	if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
		v = "https://" + v
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return "", false
	}
	p := u.Path
	if strings.HasPrefix(p, "/v2/") || strings.HasPrefix(p, "/v1/") {
		p = p[3:]
	}
	if p != "" && p != "/" {
		return u.Host + p, true
	}
	return u.Host, true
}

// empty tells whether the keyring holds no credentials.
func (k *keyring) empty() bool { return k == nil || len(k.index) == 0 }

// lookup finds the credentials for image, a repository without tag such as
// docker.io/library/nginx or registry.example.com:5000/team/app.
func (k *keyring) lookup(image string) (authn.AuthConfig, bool) {
	if k.empty() {
		return authn.AuthConfig{}, false
	}
	for _, key := range k.index {
		if urlsMatch(key, image) {
			return k.creds[key][0], true
		}
	}
	if isDockerHub(image) {
		if c, ok := k.creds[dockerHubKey]; ok {
			return c[0], true
		}
	}
	return authn.AuthConfig{}, false
}

// Resolve implements authn.Keychain; no match is anonymous, so a
// MultiKeychain goes on to the next keychain.
func (k *keyring) Resolve(r authn.Resource) (authn.Authenticator, error) {
	reg := r.RegistryStr()
	image := strings.TrimPrefix(r.String(), reg)
	if reg == dockerHubKey {
		reg = registry.DockerHub
	}
	if ac, ok := k.lookup(reg + image); ok {
		return authn.FromConfig(ac), nil
	}
	return authn.Anonymous, nil
}

// urlsMatch is the kubelet's URLsMatchStr: equal ports, equal number of host
// labels each matching as a glob, and the key's path a prefix of the image's.
func urlsMatch(glob, target string) bool {
	g, err := url.Parse("https://" + glob)
	if err != nil {
		return false
	}
	t, err := url.Parse("https://" + target)
	if err != nil {
		return false
	}
	gParts, gPort := splitHost(g)
	tParts, tPort := splitHost(t)
	if gPort != tPort || len(gParts) != len(tParts) || !strings.HasPrefix(t.Path, g.Path) {
		return false
	}
	for i, p := range gParts {
		if ok, err := filepath.Match(p, tParts[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

func splitHost(u *url.URL) ([]string, string) {
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, ""
	}
	return strings.Split(host, "."), port
}

// isDockerHub is the kubelet's isDefaultRegistryMatch.
func isDockerHub(image string) bool {
	first, _, found := strings.Cut(image, "/")
	if first == "" {
		return false
	}
	if !found || first == registry.DockerHub || first == dockerHubKey {
		return true
	}
	return !registry.IsHost(first)
}
