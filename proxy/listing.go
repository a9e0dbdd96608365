package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// Listing a local target: the catalog, a repository's tags and referrers.
// Names and tags of a mirrored private image are as private as its content:
// a client the source would not serve does not learn them.

// serveListing serves /v2/_catalog, /v2/<name>/tags/list and
// /v2/<name>/referrers/<digest> from the local store.
func (p *Proxy) serveListing(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Path == "/v2/_catalog" {
		return p.serveCatalog(w, r)
	}
	name, api, ok := listingPath(r.URL.Path)
	if !ok {
		return newError(http.StatusNotFound, codeUnsupported, "%s is not served by this proxy", r.URL.Path)
	}
	plans, err := p.route(r.URL.Query().Get("ns"), name)
	if err != nil {
		return err
	}
	if subject, ok := strings.CutPrefix(api, "referrers/"); ok {
		return p.serveReferrers(w, r, name, subject, plans)
	}
	for _, pl := range plans {
		if pl.targetRepo == "" || !p.mayList(r, pl) {
			continue
		}
		resp, err := p.askStore(r, "/v2/"+pl.targetRepo+"/"+api)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			continue
		}
		passOn(w, r, resp)
		return nil
	}
	return newError(http.StatusNotFound, codeNameUnknown, "repository %s is not known to this registry", name)
}

// mayList tells whether r may learn what pl's target repository holds: a
// mirror of a private source only to clients the source would serve.
func (p *Proxy) mayList(r *http.Request, pl plan) bool {
	if pl.src == nil {
		return true
	}
	ok, _ := p.privacy.permits(r, *pl.src)
	return ok
}

// serveReferrers lists the referrers of a digest. A plan's target answers
// when it holds the subject or lists referrers of it; otherwise the last
// plan's source answers (the image is not mirrored), or, with no source,
// the target's answer stands: an empty index, or referrers of a subject
// that was never pushed, as the spec allows.
func (p *Proxy) serveReferrers(w http.ResponseWriter, r *http.Request, name, subject string, plans []plan) error {
	d, err := digest.Parse(subject)
	if err != nil {
		return newError(http.StatusBadRequest, codeDigestInvalid, "%s is not a digest", subject)
	}
	for i, pl := range plans {
		if pl.targetRepo == "" || !p.mayList(r, pl) {
			continue
		}
		resp, err := p.askStore(r, "/v2/"+pl.targetRepo+"/referrers/"+d.String())
		if err != nil {
			return err
		}
		last := i == len(plans)-1
		if resp.StatusCode != http.StatusOK || (last && pl.src == nil) || p.targetHolds(r, pl, d, resp) {
			passOn(w, r, resp)
			return nil
		}
		if !last {
			continue
		}
		q := r.URL.Query()
		q.Del("ns")
		src, err := p.sources.Referrers(r.Context(), *pl.src, d, q.Encode())
		if err != nil {
			return err
		}
		passOn(w, r, src)
		return nil
	}
	return newError(http.StatusNotFound, codeNameUnknown, "repository %s is not known to this registry", name)
}

// targetHolds tells whether pl's target repository has subject d or lists
// referrers of it (resp, its referrers answer, is kept readable).
func (p *Proxy) targetHolds(r *http.Request, pl plan, d digest.Digest, resp *http.Response) bool {
	body, err := io.ReadAll(io.LimitReader(resp.Body, fetch.MaxManifest+1))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return true // answer with what there is
	}
	var idx struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(body, &idx) == nil && len(idx.Manifests) > 0 {
		return true
	}
	head := r.Clone(r.Context())
	head.Method = http.MethodHead
	head.Header.Set("Accept", upstream.AcceptManifests().Get("Accept"))
	m, err := p.askStore(head, "/v2/"+pl.targetRepo+"/manifests/"+d.String())
	if err != nil {
		return false
	}
	m.Body.Close()
	return m.StatusCode == http.StatusOK
}

// listingPath splits /v2/<name>/tags/list and /v2/<name>/referrers/<digest>.
func listingPath(p string) (name, api string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", false
	}
	for _, sep := range []string{"/tags/", "/referrers/"} {
		if i := strings.LastIndex(rest, sep); i > 0 && registry.IsRepository(rest[:i]) {
			return rest[:i], rest[i+1:], true
		}
	}
	return "", "", false
}

// askStore sends r's method and query (without ns) to path in the store.
func (p *Proxy) askStore(r *http.Request, path string) (*http.Response, error) {
	q := r.URL.Query()
	q.Del("ns")
	u := &url.URL{Scheme: "http", Host: p.mapper.Host, Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", r.Header.Get("Accept"))
	return target.HandlerTransport(p.store).RoundTrip(req)
}

// passOn writes the store's answer.
func passOn(w http.ResponseWriter, r *http.Request, resp *http.Response) {
	defer resp.Body.Close()
	for _, k := range []string{"Content-Type", "Content-Length", "Link", "Docker-Distribution-API-Version", "OCI-Filters-Applied"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		_ = copyBody(w, resp.Body)
	}
}

// catalogChecks bounds the privacy checks one catalog page makes at once.
const catalogChecks = 8

// serveCatalog lists the store's repositories, leaving out mirrors of
// private images the client may not read.
func (p *Proxy) serveCatalog(w http.ResponseWriter, r *http.Request) error {
	resp, err := p.askStore(r, "/v2/_catalog")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		passOn(w, r, resp)
		return nil
	}
	var page struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&page); err != nil {
		return newError(http.StatusBadGateway, codeUnknown, "catalog: %v", err)
	}
	keep := make([]bool, len(page.Repositories))
	sem := make(chan struct{}, catalogChecks)
	var wg sync.WaitGroup
	for i, repo := range page.Repositories {
		keep[i] = true
		if !imageref.IsMirrorPath(repo) {
			continue
		}
		pl := p.targetPlan(repo)
		if pl.src == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			keep[i], _ = p.privacy.permits(r, *pl.src)
		}()
	}
	wg.Wait()
	listed := []string{}
	for i, repo := range page.Repositories {
		if keep[i] {
			listed = append(listed, repo)
		}
	}
	body, _ := json.Marshal(map[string][]string{"repositories": listed})
	if l := resp.Header.Get("Link"); l != "" {
		w.Header().Set("Link", l)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}
