package hoststoml

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Cleanup undoes Apply in every folder under CertsDir that carries our state marker, not
// only those of o.Hosts, so that hosts dropped from the config since are undone too.
// Originals come back byte for byte with their permissions; files we created go, and so
// do the folders we created once they are empty. A file somebody else wrote over ours
// is left alone.
func Cleanup(ctx context.Context, o Options) (Result, error) {
	var res Result
	if err := o.validateDir(); err != nil {
		return res, fmt.Errorf("cleanup: %w", err)
	}
	dirs, err := managedDirs(o)
	if err != nil {
		return res, fmt.Errorf("cleanup: %w", err)
	}
	var (
		errs        []error
		dropCertDir bool
	)
	for _, dir := range dirs {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		createdCerts, err := cleanupDir(o, dir, &res)
		if err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", dir, err))
		}
		dropCertDir = dropCertDir || createdCerts
	}
	if dropCertDir && len(errs) == 0 {
		removeEmptyDir(o.CertsDir, &res)
	}
	return res, errors.Join(errs...)
}

// managedDirs lists the host folders that have our state marker, plus those of o.Hosts.
func managedDirs(o Options) ([]string, error) {
	entries, err := os.ReadDir(o.CertsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var dirs []string
	for _, e := range entries {
		dir := filepath.Join(o.CertsDir, e.Name())
		if !e.IsDir() {
			continue
		}
		if _, err := os.Lstat(pathsIn(dir).state); err == nil {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	for _, h := range o.Hosts {
		if err := validateHostName(h.Name); err != nil {
			return nil, err
		}
		dir, err := hostDir(o.CertsDir, h.Name)
		if err != nil {
			return nil, err
		}
		if !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	return dirs, nil
}

// cleanupDir undoes one folder; it reports whether that run had created the certs dir.
func cleanupDir(o Options, dir string, res *Result) (bool, error) {
	log := o.logger().With("dir", dir)
	p := pathsIn(dir)
	st, err := readState(p)
	if err != nil || st == nil {
		return false, err
	}
	cur, _, curOK, err := readRegular(p.hosts)
	if err != nil {
		return false, err
	}
	switch {
	case curOK && (digest(cur) == st.Written || bytes.HasPrefix(cur, []byte(managedMark))):
		if st.Existed {
			if err := restore(p, *st, res); err != nil {
				return false, err
			}
		} else if err := os.Remove(p.hosts); err != nil {
			return false, err
		} else {
			res.Removed = append(res.Removed, p.hosts)
		}
	default:
		log.Warn("hosts.toml was replaced or removed since we wrote it; leaving it as it is", "present", curOK)
	}
	for _, f := range []string{p.backup, p.state} {
		if ok, err := removeIfExists(f); err != nil {
			return false, err
		} else if ok {
			res.Removed = append(res.Removed, f)
		}
	}
	if st.CreatedDir {
		removeEmptyDir(dir, res)
	}
	log.Info("cleaned up", "restored", st.Existed)
	return st.CreatedCertsDir, nil
}

// restore puts the original back in one rename.
func restore(p paths, st state, res *Result) error {
	b, _, ok, err := readRegular(p.backup)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("the original of %s should be in %s, which is missing; leaving both as they are", p.hosts, p.backup)
	}
	mode := st.Mode
	if mode == 0 {
		mode = 0o644
	}
	if err := writeFileAtomic(p.hosts, b, mode); err != nil {
		return err
	}
	res.Restored = append(res.Restored, p.hosts)
	return nil
}

// removeEmptyDir removes a folder we created, unless somebody has put something in it.
func removeEmptyDir(dir string, res *Result) {
	if err := os.Remove(dir); err == nil {
		res.Removed = append(res.Removed, dir)
	}
}
