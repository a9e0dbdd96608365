package daemonset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// containerd 2.x's config_path when the file sets none and no mirrors (Linux only).
const defaultConfigPath2x = "/etc/containerd/certs.d:/etc/docker/certs.d"

// Report says where containerd looks for hosts.toml files, from its config.toml.
type Report struct {
	Path    string // the config checked
	Version int    // its `version`: 1 (old 1.x), 2 (1.x; 2.x migrates it), 3 or 4 (2.x)
	// Section is the table containerd reads config_path from for this version, e.g.
	// plugins."io.containerd.cri.v1.images".registry (2.x) or
	// plugins."io.containerd.grpc.v1.cri".registry (1.x).
	Section    string
	ConfigPath string // as set; containerd 2.x's default when Default
	Default    bool   // the file does not set it and containerd 2.x's default applies
	SetIn      string // the file that set it: Path or one of its imports
	// TransferService: containerd 2.x pulls through its transfer service, which takes
	// config_path as a single folder, not a list (containerd/containerd#12415).
	TransferService bool
	Dirs            []string // folders containerd searches for <host>/hosts.toml, in order
	Warnings        []string
}

// Covers reports whether containerd reads hosts.toml files from certsDir, a path as
// containerd on the node names it.
func (r Report) Covers(certsDir string) bool {
	return slices.Contains(r.Dirs, filepath.Clean(certsDir))
}

// CheckContainerdConfig reads a containerd config.toml and its imports and reports where
// the CRI plugin looks for hosts.toml files. The error names what to fix when containerd
// would not read them at all: config_path unset, set in the wrong table, combined with
// mirrors, or a list the transfer service cannot read.
func CheckContainerdConfig(path string) (Report, error) {
	rep := Report{Path: path}
	files, err := loadConfigs(path)
	if err != nil {
		return rep, err
	}
	rep.Version = files[0].version
	rep.Section = sectionName(rep.Version)

	var misplaced string
	local := localPull{}
	for _, f := range files {
		reg, images := f.registry()
		if v, ok := reg["config_path"].(string); ok {
			rep.ConfigPath, rep.SetIn = v, f.path
		}
		if f.version >= 3 && misplaced == "" {
			if old, ok := subtable(f.doc, "plugins", "io.containerd.grpc.v1.cri", "registry"); ok && old["config_path"] != nil {
				misplaced = f.path
			}
		}
		local.fold(images, reg)
	}
	rep.TransferService = rep.Version >= 3 && !local.any()

	if rep.ConfigPath != "" && local.mirrors {
		return rep, fmt.Errorf("%s: [%s] sets both config_path and mirrors, which containerd refuses: move the mirrors into hosts.toml files and drop them", path, rep.Section)
	}
	if rep.ConfigPath == "" {
		if misplaced != "" {
			return rep, fmt.Errorf("%s: config_path is not set in [%s]: %s sets it under [plugins.\"io.containerd.grpc.v1.cri\".registry], which a version %d config does not use for pulls; move it", path, rep.Section, misplaced, rep.Version)
		}
		if rep.Version < 3 || local.mirrors {
			return rep, fmt.Errorf("%s: config_path is not set: add config_path = \"/etc/containerd/certs.d\" under [%s] and restart containerd", path, rep.Section)
		}
		rep.ConfigPath, rep.Default, rep.SetIn = defaultConfigPath2x, true, "containerd's defaults"
	}
	rep.Dirs = searchDirs(rep.ConfigPath, rep.TransferService)
	multi := len(filepath.SplitList(rep.ConfigPath)) > 1
	switch {
	case multi && rep.TransferService:
		what := "config_path is " + fmt.Sprintf("%q", rep.ConfigPath)
		if rep.Default {
			what = fmt.Sprintf("config_path is not set, so containerd 2.x uses %q", rep.ConfigPath)
		}
		return rep, fmt.Errorf("%s: %s, a list that containerd's transfer service (its default way to pull) reads as one folder, so it ignores every hosts.toml (containerd/containerd#12415): set config_path = \"/etc/containerd/certs.d\" under [%s]", path, what, rep.Section)
	case multi && rep.Version < 3:
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("config_path %q is a list: containerd 2.x pulling through its transfer service reads it as one folder and ignores hosts.toml (containerd/containerd#12415)", rep.ConfigPath))
	}
	if rep.Version > 4 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("config version %d is newer than this check knows", rep.Version))
	}
	return rep, nil
}

// searchDirs are the roots containerd tries for a host folder. The transfer service joins
// the whole value with the host name, so there a list names no real folder.
func searchDirs(configPath string, transfer bool) []string {
	if transfer {
		return []string{filepath.Clean(configPath)}
	}
	var dirs []string
	for _, d := range filepath.SplitList(configPath) {
		if d != "" {
			dirs = append(dirs, filepath.Clean(d))
		}
	}
	return dirs
}

func sectionName(version int) string {
	switch {
	case version <= 1:
		return "plugins.cri.registry"
	case version == 2:
		return `plugins."io.containerd.grpc.v1.cri".registry`
	default:
		return `plugins."io.containerd.cri.v1.images".registry`
	}
}

// localPull collects the CRI image settings that make containerd 2.x pull without the
// transfer service (CheckLocalImagePullConfigs in containerd's internal/cri/config).
type localPull struct {
	explicit, mirrors, other bool
}

func (l *localPull) fold(images, reg map[string]any) {
	if v, ok := images["use_local_image_pull"].(bool); ok {
		l.explicit = v
	}
	if v, ok := images["disable_snapshot_annotations"].(bool); ok && !v {
		l.other = true
	}
	if v, ok := images["discard_unpacked_layers"].(bool); ok && v {
		l.other = true
	}
	if v, ok := images["image_pull_with_sync_fs"].(bool); ok && v {
		l.other = true
	}
	if v, ok := images["max_concurrent_downloads"].(int64); ok && v != 3 {
		l.other = true
	}
	for _, k := range []string{"mirrors", "configs", "auths"} {
		if m, ok := reg[k].(map[string]any); ok && len(m) > 0 {
			l.other = true
			if k == "mirrors" {
				l.mirrors = true
			}
		}
	}
}

func (l localPull) any() bool { return l.explicit || l.other }

// configFile is one parsed file: the main config or an import.
type configFile struct {
	path    string
	version int
	doc     map[string]any
}

// registry returns the CRI image table and its registry table for the file's version.
func (f configFile) registry() (reg, images map[string]any) {
	var ok bool
	switch {
	case f.version <= 1:
		if images, ok = subtable(f.doc, "plugins", "cri"); !ok {
			images, _ = subtable(f.doc, "plugins", "io.containerd.grpc.v1.cri")
		}
	case f.version == 2:
		images, _ = subtable(f.doc, "plugins", "io.containerd.grpc.v1.cri")
	}
	if images == nil {
		// Only containerd 2.x reads this table; it also takes it from an unversioned import.
		images, _ = subtable(f.doc, "plugins", "io.containerd.cri.v1.images")
	}
	reg, _ = subtable(images, "registry")
	return reg, images
}

func subtable(m map[string]any, keys ...string) (map[string]any, bool) {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

// loadConfigs reads path and its imports in the order containerd merges them, later
// files overriding earlier ones.
func loadConfigs(path string) ([]configFile, error) {
	var (
		files   []configFile
		loaded  = map[string]bool{}
		pending = []string{path}
	)
	for len(pending) > 0 {
		p := pending[0]
		pending = pending[1:]
		if loaded[p] {
			continue
		}
		loaded[p] = true
		f, imports, err := loadConfig(p)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		for _, imp := range imports {
			imp = filepath.Clean(imp)
			if !filepath.IsAbs(imp) {
				imp = filepath.Join(filepath.Dir(p), imp)
			}
			if !strings.Contains(imp, "*") {
				pending = append(pending, imp)
				continue
			}
			matches, err := filepath.Glob(imp)
			if err != nil {
				return nil, fmt.Errorf("%s: import %q: %w", p, imp, err)
			}
			pending = append(pending, matches...)
		}
	}
	return files, nil
}

func loadConfig(path string) (configFile, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return configFile{}, nil, fmt.Errorf("read containerd config: %w", err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(b, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return configFile{}, nil, fmt.Errorf("%s is not valid TOML: line %d, column %d: %w", path, row, col, err)
		}
		return configFile{}, nil, fmt.Errorf("%s is not valid TOML: %w", path, err)
	}
	f := configFile{path: path, version: 1, doc: doc}
	switch v := doc["version"].(type) {
	case nil:
	case int64:
		f.version = int(v)
	default:
		return configFile{}, nil, fmt.Errorf("%s: version is %v, want a number", path, v)
	}
	var imports []string
	if list, ok := doc["imports"].([]any); ok {
		for _, i := range list {
			if s, ok := i.(string); ok {
				imports = append(imports, s)
			}
		}
	}
	return f, imports, nil
}
