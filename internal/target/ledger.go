package target

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// TagLedger is a target that knows which digest each tag had when the copy
// engine wrote it, so a tag that reached the store any other way is not
// served as a mirror.
type TagLedger interface {
	CopiedTag(repo, tag string) (digest.Digest, bool)
}

// ledger keeps, beside the local store, one file per tag the engine wrote
// (in-process, through Local.Transport), holding the tag's digest:
// <root>/<repo>/_tags/<tag>. "_tags" is no valid repository component, so
// a repository's tags never collide with a deeper repository.
type ledger struct {
	root    string
	adopted string // marker: the tags a store held before the ledger are recorded

	cache *ttlcache.Cache[string, digest.Digest] // repo:tag -> digest, as read or written
}

func (l *ledger) file(repo, tag string) string {
	return filepath.Join(l.root, filepath.FromSlash(repo), "_tags", tag)
}

func (l *ledger) record(repo, tag string, d digest.Digest) error {
	if err := replaceFile(l.file(repo, tag), []byte(d.String())); err != nil {
		return fmt.Errorf("tag ledger %s:%s: %w", repo, tag, err)
	}
	l.cache.Set(repo+":"+tag, d, 0)
	return nil
}

func (l *ledger) lookup(repo, tag string) (digest.Digest, bool) {
	key := repo + ":" + tag
	if d, ok := l.cache.Get(key); ok {
		return d, true
	}
	b, err := os.ReadFile(l.file(repo, tag))
	if err != nil {
		return "", false
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", false
	}
	l.cache.Set(key, d, 0)
	return d, true
}

// adopt records every tag of a store that predates the ledger, once, so an
// upgrade keeps serving the mirrors it has (they were written before the
// proxy refused client writes: see docs/migrating.md).
func (l *ledger) adopt(ctx context.Context, host string, rt http.RoundTripper) error {
	if _, err := os.Stat(l.adopted); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tag ledger: %w", err)
	}
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(rt)}
	repos, err := remote.Catalog(ctx, reg, opts...)
	if err != nil {
		return fmt.Errorf("tag ledger: list the store: %w", err)
	}
	n := 0
	for _, repo := range repos {
		r := reg.Repo(repo)
		tags, err := remote.List(r, opts...)
		if err != nil {
			return fmt.Errorf("tag ledger: tags of %s: %w", repo, err)
		}
		for _, tag := range tags {
			desc, err := remote.Head(r.Tag(tag), opts...)
			if err != nil {
				return fmt.Errorf("tag ledger: %s:%s: %w", repo, tag, err)
			}
			if err := l.record(repo, tag, digest.Digest(desc.Digest.String())); err != nil {
				return err
			}
			n++
		}
	}
	if err := os.MkdirAll(filepath.Dir(l.adopted), 0o755); err != nil {
		return fmt.Errorf("tag ledger: %w", err)
	}
	if err := os.WriteFile(l.adopted, nil, 0o644); err != nil {
		return fmt.Errorf("tag ledger: %w", err)
	}
	if n > 0 {
		slog.Default().Info("local store: tags written before the tag ledger adopted as copies", "tags", n)
	}
	return nil
}

// ledgerTransport records the tags the copy engine writes through it.
type ledgerTransport struct {
	rt     http.RoundTripper
	ledger *ledger
}

func (t ledgerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil || req.Method != http.MethodPut || resp.StatusCode != http.StatusCreated {
		return resp, err
	}
	repo, tag, ok := taggedManifestPath(req.URL.Path)
	if !ok {
		return resp, nil
	}
	d, derr := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if derr == nil {
		derr = t.ledger.record(repo, tag, d)
	}
	if derr != nil {
		// Unrecorded, the tag would not be served: fail the copy, which retries.
		resp.Body.Close()
		return nil, fmt.Errorf("record %s:%s: %w", repo, tag, derr)
	}
	return resp, nil
}

// taggedManifestPath splits /v2/<repo>/manifests/<tag>; a digest is no tag.
func taggedManifestPath(p string) (repo, tag string, ok bool) {
	c, ok := registry.ParsePath(p)
	if !ok || c.Kind != registry.Manifests || c.Digest != "" {
		return "", "", false
	}
	return c.Repo, c.Ref, true
}

// replaceFile writes data to p (making its folder) through a temporary file
// renamed over p, so a reader never sees half of it.
func replaceFile(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), p)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
	}
	return werr
}
