// Package registry is the one vocabulary of registry names: what a registry
// host is (Docker's rule), a registry as the config writes one
// (HOST[:PORT][/PREFIX]), Docker Hub's names folded into one, and the host
// each cloud registry is reached at. The config, the keychains, the targets,
// the proxy and containerd-config all ask here.
package registry

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// DockerHub is Docker Hub's canonical name.
const DockerHub = "docker.io"

// IsHost is Docker's rule for the first component of an image reference
// (distribution/reference's splitDockerDomain, the kubelet's
// isDefaultRegistryMatch): it names a registry when it has a '.' or a ':'
// or is localhost; anything else is a path on Docker Hub.
func IsHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// Canonical is the key a registry host is known by: lower case (DNS ignores
// case), Docker Hub's names (index.docker.io, registry-1.docker.io) folded
// into docker.io.
func Canonical(host string) string {
	h := strings.ToLower(host)
	switch h {
	case "index.docker.io", "registry-1.docker.io":
		return DockerHub
	}
	return h
}

// Base is a registry as the config writes one: HOST[:PORT][/PREFIX], the
// prefix being a repository path inside the host (may be empty).
type Base struct {
	Host   string
	Prefix string
}

// ParseBase reads HOST[:PORT][/PREFIX] (a trailing '/' is dropped) and
// checks that the host is a registry host and the prefix a repository path.
func ParseBase(s string) (Base, error) {
	host, prefix, _ := strings.Cut(strings.TrimSuffix(s, "/"), "/")
	probe := host + "/probe/x"
	if prefix != "" {
		probe = host + "/" + prefix + "/x"
	}
	named, err := reference.ParseNamed(probe)
	if err != nil || reference.Domain(named) != host || !IsHost(host) {
		return Base{}, fmt.Errorf("invalid registry %q, want HOST[:PORT][/PREFIX] such as registry.example.com/mirror", s)
	}
	return Base{Host: host, Prefix: prefix}, nil
}

// String is HOST[:PORT][/PREFIX].
func (b Base) String() string {
	if b.Prefix == "" {
		return b.Host
	}
	return b.Host + "/" + b.Prefix
}

// ParseHost reads a bare HOST[:PORT].
func ParseHost(s string) (string, error) {
	b, err := ParseBase(s)
	if err != nil || b.Prefix != "" || b.Host != s {
		return "", fmt.Errorf("invalid registry host %q, want HOST[:PORT]", s)
	}
	return b.Host, nil
}

// ECRHost is the ECR registry of an account in a region; China regions
// (cn-*) are under amazonaws.com.cn.
func ECRHost(accountID, region string) string {
	domain := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		domain = "amazonaws.com.cn"
	}
	return fmt.Sprintf("%s.dkr.ecr.%s.%s", accountID, region, domain)
}

// ArtifactRegistryHost is the Docker registry of an Artifact Registry location.
func ArtifactRegistryHost(location string) string { return location + artifactRegistrySuffix }

// IsArtifactRegistry tells whether host is an Artifact Registry Docker host
// (LOCATION-docker.pkg.dev).
func IsArtifactRegistry(host string) bool {
	return strings.HasSuffix(Canonical(host), artifactRegistrySuffix)
}

const artifactRegistrySuffix = "-docker.pkg.dev"
