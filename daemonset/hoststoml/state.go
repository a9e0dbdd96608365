package hoststoml

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	hostsFileName = "hosts.toml"
	backupSuffix  = ".k8s-image-swapper.orig"
	stateSuffix   = ".k8s-image-swapper.state"
)

// state is the marker next to a hosts.toml we manage. It lets Cleanup undo exactly what
// Apply did, and lets Apply tell its own file from one somebody wrote after it.
type state struct {
	Existed         bool        `json:"existed"`                   // a hosts.toml was there before us; its bytes are in the backup
	Mode            fs.FileMode `json:"mode,omitempty"`            // its permissions, restored with it
	Written         string      `json:"written"`                   // sha256 of the hosts.toml we wrote
	CreatedDir      bool        `json:"createdDir,omitempty"`      // we made the host folder
	CreatedCertsDir bool        `json:"createdCertsDir,omitempty"` // we made the certs dir itself
}

// paths are the files of one host folder.
type paths struct{ dir, hosts, backup, state string }

func pathsIn(dir string) paths {
	h := filepath.Join(dir, hostsFileName)
	return paths{dir: dir, hosts: h, backup: h + backupSuffix, state: h + stateSuffix}
}

// readState returns nil when there is no marker: the folder is not ours.
func readState(p paths) (*state, error) {
	b, err := os.ReadFile(p.state)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read state %s: %w", p.state, err)
	}
	return &s, nil
}

func writeState(p paths, s state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(p.state, append(b, '\n'), 0o644)
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// readRegular reads a file that must be a regular file; ok is false when it is absent.
// A symlink is refused: replacing it would not restore it.
func readRegular(path string) (b []byte, mode fs.FileMode, ok bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, false, fmt.Errorf("%s is not a regular file (%s); not touching it", path, fi.Mode().Type())
	}
	b, err = os.ReadFile(path)
	if err != nil {
		return nil, 0, false, err
	}
	return b, fi.Mode().Perm(), true, nil
}

// writeFileAtomic replaces path in one rename, so containerd never reads half a file.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable; best effort, as not every filesystem supports it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// removeIfExists removes path and reports whether it was there.
func removeIfExists(path string) (bool, error) {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}
