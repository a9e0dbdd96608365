// Package imageref parses and normalises image references and maps a source
// image to its name in the target registry and back.
//
// The mapping is the original k8s-image-swapper's, so existing mirrors stay
// valid: nginx -> <target>/docker.io/library/nginx:latest. A source host with
// a port is not a valid path component, so its ':' becomes '_':
// registry.local:5000/team/app -> <target>/registry.local_5000/team/app. No
// host name contains '_', which keeps the reverse mapping exact.
package imageref

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Parse normalises s: "nginx" -> docker.io/library/nginx:latest. A reference
// with a digest keeps it, and keeps its tag too when it has both.
func Parse(s string) (reference.Named, error) {
	if s == "" {
		return nil, errors.New("empty image reference")
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, fmt.Errorf("parse image reference %q: %w", s, err)
	}
	return reference.TagNameOnly(named), nil
}

// Tag returns the tag of r, or "".
func Tag(r reference.Named) string {
	if t, ok := r.(reference.Tagged); ok {
		return t.Tag()
	}
	return ""
}

// Digest returns the digest of r, or "".
func Digest(r reference.Named) string {
	if d, ok := r.(reference.Digested); ok {
		return d.Digest().String()
	}
	return ""
}

// withRef gives name the tag and digest of from.
func withRef(name reference.Named, from reference.Named) (reference.Named, error) {
	out := name
	var err error
	if t, ok := from.(reference.Tagged); ok {
		if out, err = reference.WithTag(out, t.Tag()); err != nil {
			return nil, err
		}
	}
	if d, ok := from.(reference.Digested); ok {
		if out, err = reference.WithDigest(out, d.Digest()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mirrorPath is the repository path a source repository gets under the
// target: docker.io/library/nginx, registry.local_5000/team/app.
func mirrorPath(src reference.Named) (string, error) {
	domain := reference.Domain(src)
	if strings.HasPrefix(domain, "[") {
		return "", fmt.Errorf("mirror %s: an IPv6 registry host cannot be a repository path", src.Name())
	}
	// DNS is case-insensitive and repository paths must be lower case.
	host := strings.ToLower(domain)
	if !registry.IsHost(host) {
		// Only an upper-case letter made the library read "A/x" as a host;
		// lower-cased it would read as a path, so there is no way back.
		return "", fmt.Errorf("mirror %s: registry host %q needs a dot or a port", src.Name(), domain)
	}
	return strings.ReplaceAll(host, ":", "_") + "/" + reference.Path(src), nil
}

// sourceName reverses mirrorPath: registry.local_5000/team/app -> registry.local:5000/team/app.
func sourceName(path string) (reference.Named, error) {
	first, rest, ok := strings.Cut(path, "/")
	if !ok || rest == "" {
		return nil, fmt.Errorf("%q is not a mirrored repository path: want HOST/PATH", path)
	}
	host, ok := MirrorHost(first)
	if !ok {
		return nil, fmt.Errorf("%q is not a mirrored repository path: %q is not a registry host", path, first)
	}
	named, err := reference.ParseNamed(host + "/" + rest)
	if err != nil {
		return nil, fmt.Errorf("%q is not a mirrored repository path: %w", path, err)
	}
	if reference.Domain(named) != host {
		return nil, fmt.Errorf("%q is not a mirrored repository path", path)
	}
	return named, nil
}

// MirrorHost reads the registry host that the first component of a mirror
// path names, as mirrorPath writes it: a host by Docker's rule, with its
// port's ':' as '_' (registry.local_5000, localhost_5000). ok is false for
// a component that names no registry (library, my_team).
func MirrorHost(first string) (host string, ok bool) {
	host = first
	if i := strings.LastIndexByte(first, '_'); i > 0 && isPort(first[i+1:]) {
		host = first[:i] + ":" + first[i+1:]
	}
	return host, registry.IsHost(host)
}

func isPort(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// IsMirrorPath tells whether a repository path is in the mirror layout, so
// that only copies belong there. It is the fence against writes and errs on
// the safe side: a first component that could name a registry (a '.', a
// port in any spelling, localhost) counts, wider than MirrorHost.
func IsMirrorPath(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return registry.IsHost(strings.ToLower(strings.Replace(first, "_", ":", 1)))
}

// Mapper maps between source references and target references for one
// target registry base, HOST[:PORT][/PREFIX].
type Mapper struct {
	Host   string // registry host[:port]
	Prefix string // repository prefix inside the host, may be empty
}

// NewMapper checks base, HOST[:PORT][/PREFIX], and returns its Mapper.
func NewMapper(base string) (Mapper, error) {
	b, err := registry.ParseBase(base)
	if err != nil {
		return Mapper{}, fmt.Errorf("target: %w", err)
	}
	return Mapper{Host: b.Host, Prefix: b.Prefix}, nil
}

// Base is HOST[:PORT][/PREFIX].
func (m Mapper) Base() string { return registry.Base{Host: m.Host, Prefix: m.Prefix}.String() }

// Repository is the target repository (inside the host) for a source:
// [prefix/]docker.io/library/nginx. ECR and GAR repository names are this.
func (m Mapper) Repository(src reference.Named) (string, error) {
	p, err := mirrorPath(src)
	if err != nil {
		return "", err
	}
	if m.Prefix != "" {
		p = m.Prefix + "/" + p
	}
	return p, nil
}

// ToTarget maps a source reference to its target reference, keeping its
// tag and digest.
func (m Mapper) ToTarget(src reference.Named) (reference.Named, error) {
	repo, err := m.Repository(src)
	if err != nil {
		return nil, err
	}
	named, err := reference.ParseNamed(m.Host + "/" + repo)
	if err != nil {
		return nil, fmt.Errorf("map %s to target %s: %w", src, m.Base(), err)
	}
	return withRef(named, src)
}

// IsTarget tells whether r already names an image in the target.
func (m Mapper) IsTarget(r reference.Named) bool {
	if !strings.EqualFold(reference.Domain(r), m.Host) {
		return false
	}
	return m.Prefix == "" || strings.HasPrefix(reference.Path(r), m.Prefix+"/")
}

// ToSource maps a target reference back to its source, keeping tag and digest.
func (m Mapper) ToSource(t reference.Named) (reference.Named, error) {
	if !m.IsTarget(t) {
		return nil, fmt.Errorf("%s is not in target %s", t, m.Base())
	}
	p := reference.Path(t)
	if m.Prefix != "" {
		p = strings.TrimPrefix(p, m.Prefix+"/")
	}
	named, err := sourceName(p)
	if err != nil {
		return nil, fmt.Errorf("map %s back to its source: %w", t, err)
	}
	return withRef(named, t)
}
