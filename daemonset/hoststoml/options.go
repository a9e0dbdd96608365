package hoststoml

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// DefaultDialTimeout is short on purpose: it is how long containerd waits for the proxy
// before it falls back to the origin.
const DefaultDialTimeout = time.Second

// Host is one registry containerd should reach through the proxy.
type Host struct {
	// Name is the registry host as containerd names it: "docker.io", "ghcr.io",
	// "127.0.0.1:5000", "123.dkr.ecr.us-east-1.amazonaws.com".
	Name string
	// Server is the origin URL written as `server`; empty derives it from Name
	// (docker.io -> https://registry-1.docker.io, otherwise https://<Name>).
	Server string
	// SkipVerify writes `skip_verify = true` with the server: with an http://
	// server, containerd 2.x then tries HTTPS without verifying the
	// certificate first and plain HTTP after it (containerd 1.6: plain HTTP).
	SkipVerify bool
}

// Options says where to write and what.
type Options struct {
	// CertsDir is containerd's registry config_path as this process sees it,
	// e.g. /etc/containerd/certs.d, or /host/etc/containerd/certs.d when mounted.
	CertsDir string
	// ProxyURL is the node proxy, e.g. http://127.0.0.1:7439. containerd adds ?ns=<registry>
	// to every request itself, so the URL carries no registry.
	ProxyURL string
	// DialTimeout bounds the connect to the proxy; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// Hosts are the registries to configure.
	Hosts []Host
	// PlainHTTP names hosts whose origin speaks plain http (local test registries);
	// Host.Server, when set, wins.
	PlainHTTP map[string]bool

	// ContainerdConfig, when set, is the containerd config.toml to check before any write:
	// Apply refuses unless its registry config_path covers CertsDir.
	ContainerdConfig string
	// ContainerdMajor is containerd's major version on the node (1 or 2), for the check;
	// 0 when unknown. See containerdcfg.Check.
	ContainerdMajor int
	// ContainerdCertsDir is CertsDir as containerd on the node names it, for when this
	// process sees the node's filesystem under another path; empty means CertsDir.
	ContainerdCertsDir string

	// Logger receives progress; nil means slog.Default().
	Logger *slog.Logger
}

// Result lists what a run did, by absolute path.
type Result struct {
	Written   []string // hosts.toml files created or rewritten
	Unchanged []string // hosts.toml files that already were as wanted
	Restored  []string // original hosts.toml files put back (Cleanup)
	Removed   []string // files and folders removed (Cleanup)
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func (o Options) dialTimeout() time.Duration {
	if o.DialTimeout == 0 {
		return DefaultDialTimeout
	}
	return o.DialTimeout
}

// validateDir checks the options every run needs.
func (o Options) validateDir() error {
	if o.CertsDir == "" {
		return errors.New("certs dir is empty")
	}
	if !filepath.IsAbs(o.CertsDir) {
		return fmt.Errorf("certs dir %q is not an absolute path", o.CertsDir)
	}
	return nil
}

// validate checks everything Apply needs before it touches the disk.
func (o Options) validate() error {
	if err := o.validateDir(); err != nil {
		return err
	}
	if err := checkURL("proxy URL", o.ProxyURL); err != nil {
		return err
	}
	if o.DialTimeout < 0 {
		return fmt.Errorf("dial timeout %s is negative", o.DialTimeout)
	}
	if len(o.Hosts) == 0 {
		return errors.New("no hosts to configure")
	}
	seen := map[string]bool{}
	for _, h := range o.Hosts {
		if err := validateHostName(h.Name); err != nil {
			return err
		}
		if seen[h.Name] {
			return fmt.Errorf("host %q is listed twice", h.Name)
		}
		seen[h.Name] = true
		if h.Server != "" {
			if err := checkURL(fmt.Sprintf("server of host %q", h.Name), h.Server); err != nil {
				return err
			}
		}
	}
	return nil
}

// origin is the URL containerd falls back to for h.
func (o Options) origin(h Host) string {
	if h.Server != "" {
		return h.Server
	}
	scheme := "https"
	if o.PlainHTTP[h.Name] {
		scheme = "http"
	}
	if h.Name == registry.DockerHub {
		// containerd's own default: docker.io itself serves no registry API.
		return scheme + "://registry-1.docker.io"
	}
	return scheme + "://" + h.Name
}

// checkURL accepts http(s)://host[:port][/path] and nothing containerd would misread.
func checkURL(what, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s %q: %w", what, s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%s %q: scheme must be http or https", what, s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%s %q: want scheme://host[:port][/path] only", what, s)
	}
	if strings.ContainsAny(s, "\"\\ \t") {
		return fmt.Errorf("%s %q: contains quotes, backslashes or spaces", what, s)
	}
	return nil
}
