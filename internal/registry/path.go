package registry

import (
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Kinds of content, as they appear in distribution API paths.
const (
	Manifests = "manifests"
	Blobs     = "blobs"
	Tags      = "tags"
)

var (
	// A repository path (no host), per the distribution spec.
	repoExpr = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagExpr  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// IsRepository tells whether s is a repository path (library/nginx), as
// the distribution spec writes one.
func IsRepository(s string) bool { return repoExpr.MatchString(s) }

// Path is one request of the distribution API on a repository,
// /v2/<Repo>/<Kind>/<Ref>: the one spelling that incoming requests are
// parsed into and outgoing requests are built from.
type Path struct {
	Repo   string        // repository path, no host
	Kind   string        // Manifests, Blobs or Tags
	Ref    string        // tag or digest as sent; "list" for Tags
	Digest digest.Digest // Ref, when it is a digest
	Query  string        // raw query to send (n=1); ParsePath sets none
}

// ParsePath reads /v2/<repo>/manifests/<tag or digest> and
// /v2/<repo>/blobs/<digest>; ok is false for any other API (uploads, tags
// list, referrers) and for malformed names and references.
func ParsePath(p string) (Path, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return Path{}, false
	}
	for _, kind := range []string{Manifests, Blobs} {
		i := strings.LastIndex(rest, "/"+kind+"/")
		if i <= 0 {
			continue
		}
		c := Path{Repo: rest[:i], Kind: kind, Ref: rest[i+len(kind)+2:]}
		if !IsRepository(c.Repo) || c.Ref == "" || strings.Contains(c.Ref, "/") {
			return Path{}, false
		}
		if d, err := digest.Parse(c.Ref); err == nil {
			c.Digest = d
		} else if kind == Blobs || !tagExpr.MatchString(c.Ref) {
			return Path{}, false
		}
		return c, true
	}
	return Path{}, false
}

// String is the path (and query) to send.
func (p Path) String() string {
	s := "/v2/" + p.Repo + "/" + p.Kind + "/" + p.Ref
	if p.Query != "" {
		s += "?" + p.Query
	}
	return s
}
