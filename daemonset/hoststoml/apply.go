package hoststoml

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/k8s-image-swapper/k8s-image-swapper/daemonset/containerdcfg"
)

// managedMark starts every file we write; it identifies our file when its marker is lost.
const managedMark = "# Managed by k8s-image-swapper"

// Apply writes, for every host, a hosts.toml that sends containerd to the proxy first and
// to the registry when the proxy does not answer. Options are checked in full, including
// the containerd config when given, before anything is written. A host that fails does not
// stop the others; the errors are joined.
func Apply(ctx context.Context, o Options) (Result, error) {
	var res Result
	if err := o.validate(); err != nil {
		return res, fmt.Errorf("apply: %w", err)
	}
	if err := o.checkContainerd(); err != nil {
		return res, fmt.Errorf("apply: %w", err)
	}
	var errs []error
	for _, h := range o.Hosts {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := applyHost(o, h, &res); err != nil {
			errs = append(errs, fmt.Errorf("host %s: %w", h.Name, err))
		}
	}
	return res, errors.Join(errs...)
}

// checkContainerd refuses to write files containerd would not read.
func (o Options) checkContainerd() error {
	if o.ContainerdConfig == "" {
		return nil
	}
	rep, err := containerdcfg.Check(o.ContainerdConfig, o.ContainerdMajor)
	if err != nil {
		return err
	}
	for _, w := range rep.Warnings {
		o.logger().Warn("containerd config", "path", o.ContainerdConfig, "warning", w)
	}
	dir := o.ContainerdCertsDir
	if dir == "" {
		dir = o.CertsDir
	}
	if !rep.Covers(dir) {
		return fmt.Errorf("containerd reads hosts.toml files from %q (config_path %q under [%s] in %s), not from %s",
			rep.Dirs, rep.ConfigPath, rep.Section, rep.SetIn, dir)
	}
	return nil
}

// baseline is the file we merge into, and what the state marker must keep saying about it.
type baseline struct {
	original []byte
	existed  bool
	mode     fs.FileMode
	st       state // CreatedDir/CreatedCertsDir carried over
}

func applyHost(o Options, h Host, res *Result) error {
	log := o.logger().With("host", h.Name)
	dir, err := hostDir(o.CertsDir, h.Name)
	if err != nil {
		return err
	}
	if err := inside(o.CertsDir, dir); err != nil {
		return err
	}
	p := pathsIn(dir)
	cur, curMode, curOK, err := readRegular(p.hosts)
	if err != nil {
		return err
	}
	base, ours, err := findBaseline(p, cur, curMode, curOK, log)
	if err != nil {
		return err
	}

	out, err := merge(o, h, base, p, log)
	if err != nil {
		return err
	}
	if ours && bytes.Equal(cur, out) {
		res.Unchanged = append(res.Unchanged, p.hosts)
		log.Debug("hosts.toml unchanged", "path", p.hosts)
		return nil
	}

	st := base.st
	if err := ensureDirs(o.CertsDir, dir, &st, log); err != nil {
		return err
	}
	if err := writeBackup(p, base); err != nil {
		return err
	}
	st.Existed, st.Mode, st.Written = base.existed, base.mode, digest(out)
	// The marker goes before the file: after a crash in between, the next run sees a
	// file that is not ours and takes it as the original, which it still is.
	if err := writeState(p, st); err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if base.existed {
		mode = base.mode
	}
	if err := writeFileAtomic(p.hosts, out, mode); err != nil {
		return err
	}
	res.Written = append(res.Written, p.hosts)
	log.Info("wrote hosts.toml", "path", p.hosts, "merged", base.existed)
	return nil
}

// findBaseline works out which bytes are the original. ours reports that the current
// file is the one we last wrote, so an equal rendering needs no write.
func findBaseline(p paths, cur []byte, curMode fs.FileMode, curOK bool, log *slog.Logger) (baseline, bool, error) {
	st, err := readState(p)
	if err != nil {
		return baseline{}, false, err
	}
	isOurs := curOK && bytes.HasPrefix(cur, []byte(managedMark))
	switch {
	case st != nil && curOK && digest(cur) == st.Written:
		b, err := fromBackup(p, *st)
		return b, true, err
	case st != nil && isOurs:
		log.Warn("hosts.toml was edited since we wrote it; writing it again", "path", p.hosts)
		b, err := fromBackup(p, *st)
		return b, false, err
	case st != nil:
		// Somebody replaced or removed our file: what is there now is the original.
		log.Warn("hosts.toml was replaced since we wrote it; merging into the new file", "path", p.hosts, "present", curOK)
		return baseline{original: cur, existed: curOK, mode: curMode, st: *st}, false, nil
	case isOurs:
		// Our file without its marker: the backup, if any, is still the original.
		log.Warn("hosts.toml is ours but its state file is missing; rebuilding it", "path", p.hosts)
		b, mode, ok, err := readRegular(p.backup)
		return baseline{original: b, existed: ok, mode: mode}, false, err
	default:
		return baseline{original: cur, existed: curOK, mode: curMode}, false, nil
	}
}

func fromBackup(p paths, st state) (baseline, error) {
	if !st.Existed {
		return baseline{st: st}, nil
	}
	b, _, ok, err := readRegular(p.backup)
	if err != nil {
		return baseline{}, err
	}
	if !ok {
		return baseline{}, fmt.Errorf("%s says the original was kept in %s, which is missing; "+
			"put the original back as %s and remove %s", p.state, p.backup, p.hosts, p.state)
	}
	return baseline{original: b, existed: true, mode: st.Mode, st: st}, nil
}

// merge renders the file for h over the baseline and reads it back as containerd would.
func merge(o Options, h Host, base baseline, p paths, log *slog.Logger) ([]byte, error) {
	server := o.origin(h)
	var orig hostsFile
	if base.existed {
		var err error
		if orig, err = parseHostsFile(base.original); err != nil {
			return nil, fmt.Errorf("existing %s cannot be read the way containerd reads it, so containerd ignores it today (%w); fix or remove it", p.hosts, err)
		}
		if _, ok := orig.Hosts[o.ProxyURL]; ok {
			return nil, fmt.Errorf("existing %s already has [host.%s]; remove it, we add it ourselves", p.hosts, quote(o.ProxyURL))
		}
		if orig.Server != "" && orig.Server != server {
			log.Info("keeping the server of the existing hosts.toml", "path", p.hosts, "server", orig.Server, "ours", server)
			server = orig.Server
		}
	}
	r := rendering{proxyURL: o.ProxyURL, dialTimeout: o.dialTimeout(), server: server,
		skipVerify: h.SkipVerify && !orig.SkipVerifySet}
	if len(base.original) == 0 { // containerd treats an empty hosts.toml as none
		ca, client, err := certFiles(p.dir)
		if err != nil {
			return nil, err
		}
		r.extra = certLines(ca, client)
	}
	out, err := render(base.original, r, orig.Server != "")
	if err != nil {
		return nil, fmt.Errorf("merge into %s: %w", p.hosts, err)
	}
	if err := verify(out, o.ProxyURL, server, len(orig.Order)); err != nil {
		return nil, fmt.Errorf("merge into %s: %w", p.hosts, err)
	}
	return out, nil
}

// verify reads the rendering back: the proxy first with pull and resolve only, the
// original hosts after it, the expected server last.
func verify(out []byte, proxy, server string, origHosts int) error {
	got, err := parseHostsFile(out)
	if err != nil {
		return fmt.Errorf("merged file does not parse: %w", err)
	}
	if len(got.Order) == 0 || got.Order[0] != proxy {
		return fmt.Errorf("merged file does not list the proxy first (hosts %q)", got.Order)
	}
	if len(got.Order) != origHosts+1 {
		return fmt.Errorf("merged file lists %d hosts, want %d", len(got.Order), origHosts+1)
	}
	if c := got.Hosts[proxy].Capabilities; !slices.Equal(c, []string{"pull", "resolve"}) {
		return fmt.Errorf("merged file gives the proxy capabilities %q", c)
	}
	if got.Server != server {
		return fmt.Errorf("merged file has server %q, want %q", got.Server, server)
	}
	return nil
}

// ensureDirs creates the certs dir and the host folder, noting which ones we made.
func ensureDirs(certsDir, dir string, st *state, log *slog.Logger) error {
	if _, err := os.Stat(certsDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(certsDir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", certsDir, err)
		}
		st.CreatedCertsDir = true
	} else if err != nil {
		return err
	}
	switch _, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		st.CreatedDir = true
		if _, err := os.Stat(filepath.Join(certsDir, "_default", hostsFileName)); err == nil {
			log.Warn("containerd used _default/hosts.toml for this host; our file now takes its place", "dir", dir)
		}
	case err != nil:
		return err
	}
	return nil
}

// writeBackup keeps the original next to the file, or drops a stale copy when there
// was no original.
func writeBackup(p paths, base baseline) error {
	if !base.existed {
		_, err := removeIfExists(p.backup)
		return err
	}
	if old, _, ok, err := readRegular(p.backup); err == nil && ok && bytes.Equal(old, base.original) {
		return nil
	}
	return writeFileAtomic(p.backup, base.original, base.mode)
}
