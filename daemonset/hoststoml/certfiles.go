package hoststoml

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// certFiles lists the Docker-style cert files in a host folder that has no hosts.toml.
// containerd applies them to the registry only while hosts.toml is absent, so a new file
// has to name them itself or the registry would lose its CA or client cert.
// Mirrors loadCertFiles in containerd's core/remotes/docker/config.
func certFiles(dir string) (ca []string, client [][2]string, err error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		if strings.HasSuffix(name, ".crt") {
			ca = append(ca, name)
		}
		if cert, ok := strings.CutSuffix(name, ".cert"); ok {
			pair := [2]string{name, ""}
			if _, err := os.Stat(filepath.Join(dir, cert+".key")); err == nil {
				pair[1] = cert + ".key"
			} else if !os.IsNotExist(err) {
				return nil, nil, err
			}
			client = append(client, pair)
		}
	}
	return ca, client, nil
}

// certLines renders cert files as top-level keys, which apply to `server`. Relative paths
// are fine: containerd resolves them against the host folder.
func certLines(ca []string, client [][2]string) string {
	var b strings.Builder
	if len(ca) > 0 {
		q := make([]string, len(ca))
		for i, c := range ca {
			q[i] = quote(c)
		}
		fmt.Fprintf(&b, "ca = [%s]\n", strings.Join(q, ", "))
	}
	if len(client) > 0 {
		q := make([]string, len(client))
		for i, c := range client {
			if c[1] == "" {
				q[i] = quote(c[0])
			} else {
				q[i] = "[" + quote(c[0]) + ", " + quote(c[1]) + "]"
			}
		}
		fmt.Fprintf(&b, "client = [%s]\n", strings.Join(q, ", "))
	}
	return b.String()
}
