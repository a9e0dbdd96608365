package hoststoml

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

// hostNameRegexp is a registry host as image references spell it: a DNS name, IPv4 or
// [IPv6], with an optional port. Anchored, so no slash, dot-dot or space gets through.
var hostNameRegexp = regexp.MustCompile(`^(?:` + reference.DomainRegexp.String() + `)$`)

// validateHostName rejects anything that is not a registry host, so that a host name
// can never name a folder outside the certs dir.
func validateHostName(name string) error {
	if name == "" {
		return errors.New("host name is empty")
	}
	if len(name) > 255 || !hostNameRegexp.MatchString(name) {
		return fmt.Errorf("host name %q is not a registry host (want host[:port], e.g. docker.io or 127.0.0.1:5000)", name)
	}
	if _, port, err := net.SplitHostPort(name); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("host name %q: port out of range", name)
		}
	}
	return nil
}

// hostDirName is containerd's alternative folder name for a host with a port:
// "127.0.0.1:5000" -> "127.0.0.1_5000_" (see hostDirectory in containerd's
// core/remotes/docker/config).
func hostDirName(name string) string {
	if i := strings.LastIndex(name, ":"); i > 0 {
		return name[:i] + "_" + name[i+1:] + "_"
	}
	return name
}

// hostDir picks the folder containerd reads for name: the "_port_" spelling wins when it
// exists, as in containerd; otherwise the plain name, which we create if needed.
func hostDir(certsDir, name string) (string, error) {
	if alt := hostDirName(name); alt != name {
		p := filepath.Join(certsDir, alt)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !os.IsNotExist(err) {
			return "", fmt.Errorf("stat %s: %w", p, err)
		}
	}
	return filepath.Join(certsDir, name), nil
}

// inside guards the write path once more: dir must be a direct child of certsDir.
func inside(certsDir, dir string) error {
	rel, err := filepath.Rel(certsDir, dir)
	if err != nil || rel == "." || rel == ".." || strings.ContainsRune(rel, filepath.Separator) {
		return fmt.Errorf("%s is not a folder directly under %s", dir, certsDir)
	}
	return nil
}
