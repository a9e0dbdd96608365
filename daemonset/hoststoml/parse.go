package hoststoml

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// This file reads hosts.toml the way containerd does (parseHostsFile, getSortedHosts and
// parseHostConfig in containerd's core/remotes/docker/config), without touching cert files.
// It matters because containerd does not fail on a file it cannot read: it logs, ignores
// the file and pulls straight from the registry. So we check before we write.

// hostEntry mirrors containerd's hostFileConfig: the keys of a [host."..."] table, also
// allowed at the top level where they apply to `server`.
type hostEntry struct {
	Capabilities []string       `toml:"capabilities"`
	CACert       any            `toml:"ca"`
	Client       any            `toml:"client"`
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
	DialTimeout  string         `toml:"dial_timeout"`
}

// hostsFile is a parsed hosts.toml.
type hostsFile struct {
	Server        string
	SkipVerifySet bool                 // the file sets skip_verify for the server
	Order         []string             // [host."..."] keys in file order: the order containerd tries them
	Hosts         map[string]hostEntry // by key
}

// parseHostsFile fails where containerd would ignore the file.
func parseHostsFile(b []byte) (hostsFile, error) {
	var c struct {
		hostEntry
		Server string               `toml:"server"`
		Hosts  map[string]hostEntry `toml:"host"`
	}
	if err := toml.Unmarshal(b, &c); err != nil {
		return hostsFile{}, err
	}
	order, err := hostOrder(b)
	if err != nil {
		return hostsFile{}, err
	}
	for _, key := range order {
		if err := checkHostEntry(key, c.Hosts[key]); err != nil {
			return hostsFile{}, fmt.Errorf("host %q: %w", key, err)
		}
	}
	if err := checkHostEntry(c.Server, c.hostEntry); err != nil {
		return hostsFile{}, fmt.Errorf("server %q: %w", c.Server, err)
	}
	return hostsFile{Server: c.Server, SkipVerifySet: c.SkipVerify != nil, Order: order, Hosts: c.Hosts}, nil
}

// hostOrder lists [host."X"] tables in file order, skipping a repeat of the previous one
// (its sub-tables such as [host."X".header]), exactly as containerd does. Hosts given
// only as dotted keys or inline tables are not listed, so containerd never uses them.
func hostOrder(b []byte) ([]string, error) {
	var (
		order []string
		last  string
		p     unstable.Parser
	)
	p.Reset(b)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table {
			continue
		}
		var parts []string
		for it := e.Key(); it.Next(); {
			parts = append(parts, string(it.Node().Data))
		}
		if len(parts) < 2 || parts[0] != "host" || parts[1] == last {
			continue
		}
		last = parts[1]
		order = append(order, last)
	}
	return order, p.Error()
}

// checkHostEntry does what containerd's parseHostConfig checks, minus reading files.
func checkHostEntry(server string, h hostEntry) error {
	if server != "" {
		if !strings.HasPrefix(server, "http") {
			server = "https://" + server
		}
		if _, err := url.Parse(server); err != nil {
			return err
		}
	}
	for _, c := range h.Capabilities {
		switch strings.ToLower(c) {
		case "pull", "resolve", "push", "referrers":
		default:
			return fmt.Errorf("unknown capability %q", c)
		}
	}
	if err := checkStrings("ca", h.CACert, false); err != nil {
		return err
	}
	if err := checkStrings("client", h.Client, true); err != nil {
		return err
	}
	for k, v := range h.Header {
		if _, ok := v.(string); ok {
			continue
		}
		if err := checkStrings("header "+k, v, false); err != nil || v == nil {
			return fmt.Errorf("invalid type %T for header %q", v, k)
		}
	}
	if h.DialTimeout != "" {
		if _, err := time.ParseDuration(h.DialTimeout); err != nil {
			return fmt.Errorf("dial_timeout: %w", err)
		}
	}
	return nil
}

// checkStrings accepts nil, a string or a list of strings; pairs also accepts
// two-string lists inside the list, as `client` does.
func checkStrings(key string, v any, pairs bool) error {
	switch v := v.(type) {
	case nil, string:
		return nil
	case []any:
		for _, e := range v {
			switch e := e.(type) {
			case string:
			case []any:
				if !pairs || len(e) != 2 {
					return fmt.Errorf("invalid value %v for %q", e, key)
				}
				for _, s := range e {
					if _, ok := s.(string); !ok {
						return fmt.Errorf("invalid value %v for %q", e, key)
					}
				}
			default:
				return fmt.Errorf("invalid type %T for %q", e, key)
			}
		}
		return nil
	default:
		return fmt.Errorf("invalid type %T for %q", v, key)
	}
}
