package proxy

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Kinds of content, as they appear in request paths.
const (
	kindManifests = "manifests"
	kindBlobs     = "blobs"
)

var (
	// A repository path (no host), per the distribution spec.
	pathExpr = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagExpr  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// call is a parsed GET or HEAD of /v2/<name>/(manifests|blobs)/<ref>.
type call struct {
	name string        // repository as sent
	kind string        // kindManifests or kindBlobs
	ref  string        // tag or digest as sent
	dgst digest.Digest // set when ref is a digest
}

func (c call) metricKind() string {
	if c.kind == kindBlobs {
		return "blob"
	}
	return "manifest"
}

// parseCall parses the path; ok is false for any other API (uploads, tags
// list, referrers) and for malformed names and references.
func parseCall(p string) (call, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return call{}, false
	}
	for _, kind := range []string{kindManifests, kindBlobs} {
		i := strings.LastIndex(rest, "/"+kind+"/")
		if i <= 0 {
			continue
		}
		c := call{name: rest[:i], kind: kind, ref: rest[i+len(kind)+2:]}
		if !pathExpr.MatchString(c.name) || c.ref == "" || strings.Contains(c.ref, "/") {
			return call{}, false
		}
		if d, err := digest.Parse(c.ref); err == nil {
			c.dgst = d
		} else if kind == kindBlobs || !tagExpr.MatchString(c.ref) {
			return call{}, false
		}
		return c, true
	}
	return call{}, false
}

// source is a repository in a source registry.
type source struct {
	registry string // canonical host: docker.io, ghcr.io, 127.0.0.1:5000
	repo     string // path inside it: library/nginx
}

func (s source) String() string { return s.registry + "/" + s.repo }

// named is the source as a reference, for the copy engine.
func (s source) named() (reference.Named, error) { return reference.ParseNormalizedNamed(s.String()) }

// plan says where one request's content is looked for: the target first,
// then the source.
type plan struct {
	registry   string  // metrics label: the source registry, or the target host
	targetRepo string  // repository in the target; "" to skip the target
	src        *source // where a miss goes; nil for nowhere
	// fallback marks a target reference: its misses are served from the
	// source as "fallback", and its tags are the target's, unchecked.
	fallback bool
	// implicit marks a source read from the path rather than given by ns
	// (a plain registry client, not containerd): when the source cannot be
	// asked, the answer is the target's "not found".
	implicit bool
}

// route decides where a repository name, with the ns the client gave, is
// looked for: each plan in turn, all but the last only in the target. Only
// the configured registries are ever fetched from; anything else is answered
// from the target or not at all, so the proxy is no open relay.
func (p *Proxy) route(ns, name string) ([]plan, *httpError) {
	if ns != "" {
		host := registry.Canonical(ns)
		switch {
		case p.isTarget(host):
			return []plan{p.targetPlan(name)}, nil
		case p.allowed[host]:
			return p.sourcePlan(source{registry: host, repo: normalizeRepo(host, name)})
		default:
			return nil, newError(http.StatusNotFound, codeNameUnknown,
				"registry %s is not served by this proxy (see proxy.registries)", ns)
		}
	}
	verbatim := plan{registry: "target", targetRepo: name}
	first, rest, _ := strings.Cut(name, "/")
	if host, ok := imageref.MirrorHost(first); rest != "" && ok {
		host = registry.Canonical(host)
		switch {
		case p.isTarget(host):
			return []plan{p.targetPlan(rest)}, nil
		case p.allowed[host]:
			pl, err := p.sourcePlan(source{registry: host, repo: normalizeRepo(host, rest)})
			if err == nil {
				pl[0].implicit = true
			}
			return pl, err
		}
		// Not a source we serve: the target may still hold it by that name.
		return []plan{verbatim}, nil
	}
	// A bare name: the target's own repository first (the proxy is also a
	// plain registry), then Docker Hub's, as docker would read the name.
	if !p.allowed[registry.DockerHub] {
		return []plan{verbatim}, nil
	}
	hub, err := p.sourcePlan(source{registry: registry.DockerHub, repo: normalizeRepo(registry.DockerHub, name)})
	if err != nil {
		return nil, err
	}
	hub[0].implicit = true
	return append([]plan{verbatim}, hub...), nil
}

// sourcePlan looks in the source's mirror in the target first.
func (p *Proxy) sourcePlan(s source) ([]plan, *httpError) {
	named, err := s.named()
	if err != nil {
		return nil, newError(http.StatusBadRequest, codeNameInvalid, "%v", err)
	}
	repo, err := p.mapper.Repository(named)
	if err != nil {
		return nil, newError(http.StatusBadRequest, codeNameInvalid, "%v", err)
	}
	return []plan{{registry: s.registry, targetRepo: repo, src: &s}}, nil
}

// targetPlan serves a target repository; one that mirrors an allowed
// source falls back to that source when the target lacks the content.
func (p *Proxy) targetPlan(repo string) plan {
	pl := plan{registry: "target", targetRepo: repo, fallback: true}
	named, err := reference.ParseNamed(p.mapper.Host + "/" + repo)
	if err != nil {
		return pl
	}
	src, err := p.mapper.ToSource(named)
	if err != nil {
		return pl
	}
	host := registry.Canonical(reference.Domain(src))
	if !p.allowed[host] {
		return pl
	}
	pl.src = &source{registry: host, repo: reference.Path(src)}
	return pl
}

func (p *Proxy) isTarget(host string) bool { return strings.EqualFold(host, p.mapper.Host) }

// normalizeRepo gives Docker Hub's one-element names their library/ prefix.
func normalizeRepo(host, repo string) string {
	if host == registry.DockerHub && !strings.Contains(repo, "/") {
		return "library/" + repo
	}
	return repo
}
