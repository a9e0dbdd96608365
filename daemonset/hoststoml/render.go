package hoststoml

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2/unstable"
)

// header marks a file as ours. It is stable so that a second run renders the same bytes.
const header = "# Managed by k8s-image-swapper: the node proxy first, the registry as fallback.\n" +
	"# The original file, if any, is kept in " + backupSuffixName + ".\n"

// backupSuffixName is named in the header for whoever reads the file on a node.
const backupSuffixName = "hosts.toml" + backupSuffix

// rendering is what goes into one hosts.toml.
type rendering struct {
	proxyURL    string
	dialTimeout time.Duration
	server      string // written only when the original sets no server
	skipVerify  bool   // skip_verify = true, with the server
	extra       string // top-level lines for a new file: cert files containerd used so far
}

// render puts the proxy in front of original, which is kept byte for byte: its top-level
// keys first (TOML wants them before any table), then our [host] table, then the rest.
func render(original []byte, r rendering, hasServer bool) ([]byte, error) {
	split, err := preludeEnd(original)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(header)
	prelude := original[:split]
	b.Write(prelude)
	if len(prelude) > 0 && prelude[len(prelude)-1] != '\n' {
		b.WriteByte('\n')
	}
	if !hasServer {
		fmt.Fprintf(&b, "server = %s\n", quote(r.server))
		if r.skipVerify {
			b.WriteString("skip_verify = true\n")
		}
	}
	b.WriteString(r.extra)
	fmt.Fprintf(&b, "\n[host.%s]\n", quote(r.proxyURL))
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	fmt.Fprintf(&b, "  dial_timeout = %s\n", quote(r.dialTimeout.String()))
	if rest := original[split:]; len(rest) > 0 {
		if rest[0] != '\n' && !bytes.HasPrefix(rest, []byte("\r\n")) {
			b.WriteByte('\n')
		}
		b.Write(rest)
	}
	return b.Bytes(), nil
}

// preludeEnd is the offset just past the line of the last top-level key before the first
// table, so comments leading into that table stay with it.
func preludeEnd(b []byte) (int, error) {
	var (
		p   unstable.Parser
		end int
	)
	p.Reset(b)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind == unstable.Table || e.Kind == unstable.ArrayTable {
			break
		}
		if e.Kind != unstable.KeyValue {
			continue
		}
		end = int(e.Raw.Offset + e.Raw.Length)
		if i := bytes.IndexByte(b[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(b)
		}
	}
	if err := p.Error(); err != nil {
		return 0, err
	}
	return end, nil
}

// quote writes a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
