package target

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the local store's driver
	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// Local is the embedded on-disk store: distribution's registry library on
// its filesystem driver, so blobs and manifests survive restarts. It is
// reached in-process (no listener) and served by the proxy.
type Local struct {
	mapper imageref.Mapper
	app    *handlers.App
	api    http.Handler // app and what it lacks (store.go)
	tags   *ledger
	root   string // the store's folder
}

// DefaultLocalPath is target.local.path's default.
const DefaultLocalPath = "./data"

// LocalSpec is the embedded store.
type LocalSpec struct {
	Path     string // the store's folder
	Registry string // the host name its references use: the address that serves it
}

// NewLocal opens (creating if needed) the store under l.Path. Its
// references are named after l.Registry, the address that serves it.
func NewLocal(ctx context.Context, l LocalSpec) (t *Local, err error) {
	m, err := imageref.NewMapper(l.Registry)
	if err != nil {
		return nil, fmt.Errorf("local target: %w", err)
	}
	dir, err := filepath.Abs(l.Path)
	if err != nil {
		return nil, fmt.Errorf("local target path %s: %w", l.Path, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create local store %s: %w", dir, err)
	}
	secret, err := httpSecret(dir)
	if err != nil {
		return nil, err
	}
	// distribution logs each request and each 404 through logrus; callers log what matters.
	logrus.SetLevel(logrus.FatalLevel)
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem":  configuration.Parameters{"rootdirectory": dir},
			"delete":      configuration.Parameters{"enabled": true},
			"redirect":    configuration.Parameters{"disable": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	// Foreign (non-distributable) layers name where they are fetched from:
	// distribution refuses every URL unless told which to allow.
	cfg.Validation.Manifests.URLs.Allow = []string{`^https?://`}
	cfg.HTTP.Secret = secret
	cfg.Catalog.MaxEntries = 1000 // distribution's default, which only its config file loader sets
	// NewApp panics on a storage error; turn that into an error.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open local store %s: %v", dir, r)
		}
	}()
	app := handlers.NewApp(ctx, cfg)
	own := filepath.Join(dir, "k8s-image-swapper")
	tags := &ledger{root: filepath.Join(own, "tags"), adopted: filepath.Join(own, "tags.adopted"), cache: ttlcache.New[string, digest.Digest](100_000)}
	if err := tags.adopt(ctx, m.Host, HandlerTransport(app)); err != nil {
		_ = app.Shutdown()
		return nil, fmt.Errorf("open local store %s: %w", dir, err)
	}
	driver, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": dir})
	if err != nil {
		_ = app.Shutdown()
		return nil, fmt.Errorf("open local store %s: %w", dir, err)
	}
	api := &storeAPI{app: app, refs: &referrers{root: filepath.Join(own, "referrers")}, driver: driver}
	return &Local{mapper: m, app: app, api: api, tags: tags, root: dir}, nil
}

// httpSecret keeps the upload-state secret stable across restarts so that
// an upload begun before a restart can finish after it.
func httpSecret(dir string) (string, error) {
	p := filepath.Join(dir, ".http-secret")
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return string(b), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("local store secret: %w", err)
	}
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		return "", fmt.Errorf("local store secret: %w", err)
	}
	return s, nil
}

func (l *Local) Kind() string                                   { return "local" }
func (l *Local) Mapper() imageref.Mapper                        { return l.mapper }
func (l *Local) EnsureRepository(context.Context, string) error { return nil }
func (l *Local) Authenticator(context.Context) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}

// Transport reaches the store in-process; the tags written through it are
// the copies' (see CopiedTag).
func (l *Local) Transport() http.RoundTripper {
	return ledgerTransport{rt: HandlerTransport(l.api), ledger: l.tags}
}

// CopiedTag is the digest repo:tag had when a copy wrote it.
func (l *Local) CopiedTag(repo, tag string) (digest.Digest, bool) { return l.tags.lookup(repo, tag) }
func (l *Local) NameOptions() []name.Option {
	return []name.Option{name.Insecure, name.StrictValidation}
}

// Handler serves the store's full registry API (pull and push); tags
// pushed through it are not copies.
func (l *Local) Handler() http.Handler { return l.api }

// BlobFile opens blob d of repo for serving it straight from disk (with
// sendfile); an error wrapping os.ErrNotExist when repo does not hold it.
// The store checked the bytes against d when the copy wrote them.
func (l *Local) BlobFile(repo string, d digest.Digest) (*os.File, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if _, err := reference.WithName(repo); err != nil { // no "..", no absolute path
		return nil, fmt.Errorf("repository %q: %w", repo, os.ErrNotExist)
	}
	// distribution's filesystem layout: a repository holds the blobs it links.
	v2 := filepath.Join(l.root, "docker", "registry", "v2")
	alg, hex := d.Algorithm().String(), d.Encoded()
	if _, err := os.Stat(filepath.Join(v2, "repositories", filepath.FromSlash(repo), "_layers", alg, hex, "link")); err != nil {
		return nil, err
	}
	return os.Open(filepath.Join(v2, "blobs", alg, hex[:2], hex, "data"))
}

// Close stops the store's background work.
func (l *Local) Close() error { return l.app.Shutdown() }
