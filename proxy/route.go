package proxy

import (
	"net/http"
	"strings"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// plan says where one request's content is looked for: the target first,
// then the source.
type plan struct {
	registry   string        // metrics label: the source registry, or the target host
	targetRepo string        // repository in the target; "" to skip the target
	src        *fetch.Source // where a miss goes; nil for nowhere
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
func (p *Proxy) route(ns, name string) ([]plan, error) {
	if ns != "" {
		host := registry.Canonical(ns)
		switch {
		case p.isTarget(host):
			return []plan{p.targetPlan(name)}, nil
		case p.allowed[host]:
			return p.sourcePlan(fetch.Source{Registry: host, Repo: normalizeRepo(host, name)})
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
			pl, err := p.sourcePlan(fetch.Source{Registry: host, Repo: normalizeRepo(host, rest)})
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
	hub, err := p.sourcePlan(fetch.Source{Registry: registry.DockerHub, Repo: normalizeRepo(registry.DockerHub, name)})
	if err != nil {
		return nil, err
	}
	hub[0].implicit = true
	return append([]plan{verbatim}, hub...), nil
}

// sourcePlan looks in the source's mirror in the target first.
func (p *Proxy) sourcePlan(s fetch.Source) ([]plan, error) {
	named, err := s.Named()
	if err != nil {
		return nil, newError(http.StatusBadRequest, codeNameInvalid, "%v", err)
	}
	repo, err := p.mapper.Repository(named)
	if err != nil {
		return nil, newError(http.StatusBadRequest, codeNameInvalid, "%v", err)
	}
	return []plan{{registry: s.Registry, targetRepo: repo, src: &s}}, nil
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
	pl.src = &fetch.Source{Registry: host, Repo: reference.Path(src)}
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
