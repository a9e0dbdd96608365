// Package containerdcfg reads a node's containerd config.toml the way
// containerd does, to tell where its CRI plugin looks for hosts.toml files
// and what a node needs when it would not read them.
package containerdcfg

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// containerd 2.x's config_path when the file sets none and no mirrors (Linux only).
const defaultConfigPath2x = "/etc/containerd/certs.d:/etc/docker/certs.d"

// Report says where containerd looks for hosts.toml files, from its config.toml.
type Report struct {
	Path    string // the config checked
	Version int    // its `version`: 1 (old 1.x), 2 (1.x; 2.x migrates it), 3 or 4 (2.x)
	// Major is containerd's major version as given to the check; 0 when unknown.
	Major int
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
	// LocalPullBy names the setting that makes containerd 2.x pull without the transfer
	// service (use_local_image_pull, or one the transfer service lacks); "" otherwise.
	LocalPullBy string
	Dirs        []string // folders containerd searches for <host>/hosts.toml, in order
	Warnings    []string
}

// Covers reports whether containerd reads hosts.toml files from certsDir, a path as
// containerd on the node names it.
func (r Report) Covers(certsDir string) bool {
	return slices.Contains(r.Dirs, filepath.Clean(certsDir))
}

// Pulls says in words how CRI pulls on this node read hosts.toml.
func (r Report) Pulls() string {
	switch {
	case r.TransferService:
		return "containerd 2.x transfer service: config_path is one folder"
	case r.LocalPullBy != "":
		return "containerd 2.x local pull (" + r.LocalPullBy + "): config_path may be a list"
	case r.Major == 1:
		return "containerd 1.x: config_path may be a list"
	case r.Version >= 3:
		return "containerd 2.x"
	default:
		return "containerd 1.x, or 2.x migrating this file"
	}
}

// Fix is the TOML a node needs so that containerd reads hosts.toml from certsDir: the
// table to put in the config (or the import that set config_path), then restart containerd.
func (r Report) Fix(certsDir string) string {
	file := r.Path
	if r.SetIn != "" && !r.Default {
		file = r.SetIn
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# in %s, then restart containerd:\n[%s]\n  config_path = %q\n", file, r.Section, filepath.Clean(certsDir))
	if r.Version >= 3 || r.Major == 2 {
		fmt.Fprintf(&b, "# or, to keep a config_path list on containerd 2.x, pull without the transfer service:\n"+
			"[%s]\n  use_local_image_pull = true\n", imagesTable2x)
	}
	return b.String()
}

// The CRI image plugin's table in containerd 2.x.
const imagesTable2x = `plugins."io.containerd.cri.v1.images"`

// ParseMajor reads containerd's major version from what a node reports:
// "containerd://2.1.4" (a Node's containerRuntimeVersion), "v2.4.2", "1.6.20~ds1", "2".
// "" is 0, unknown.
func ParseMajor(v string) (int, error) {
	s := strings.TrimPrefix(strings.TrimSpace(v), "containerd://")
	s = strings.TrimPrefix(s, "v")
	if s == "" {
		return 0, nil
	}
	major, _, _ := strings.Cut(s, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("containerd version %q: want e.g. 2.1.4, v1.7.27 or containerd://2.1.4", v)
	}
	return n, nil
}

// Check reads a containerd config.toml and its imports and reports where the
// CRI plugin of a containerd with major version major (0: unknown) looks for hosts.toml
// files. The error names what to fix when containerd would not read them at all:
// config_path unset, set in the wrong table, combined with mirrors, or a list the
// transfer service cannot read. containerd 2.x reads a version 2 file after migrating
// it, so the same file can be right for 1.x and wrong for 2.x: give major to know.
func Check(path string, major int) (Report, error) {
	rep := Report{Path: path, Major: major}
	files, err := loadConfigs(path)
	if err != nil {
		return rep, err
	}
	rep.Version = files[0].version
	rep.Section = sectionName(rep.Version)
	if major == 1 && rep.Version >= 3 {
		return rep, fmt.Errorf("%s: version %d is a containerd 2.x config, which containerd 1.x cannot read", path, rep.Version)
	}
	is2x := rep.Version >= 3 || major >= 2

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
		if f.version <= 2 && major >= 2 {
			// containerd 2.x moves these from the 1.x CRI table into its image table, the
			// settings of its containerd table only when that table has runtimes (its
			// migration stops early otherwise).
			if old, ok := subtable(images, "containerd"); ok && old["runtimes"] != nil {
				local.fold(old, nil)
			}
			if t, ok := subtable(f.doc, "plugins", "io.containerd.cri.v1.images"); ok {
				local.fold(t, nil)
			}
		}
	}
	rep.LocalPullBy = local.by()
	rep.TransferService = is2x && rep.LocalPullBy == ""

	if rep.ConfigPath != "" && local.mirrors {
		return rep, fmt.Errorf("%s: [%s] sets both config_path and mirrors, which containerd refuses: move the mirrors into hosts.toml files and drop them", path, rep.Section)
	}
	if rep.ConfigPath == "" {
		if misplaced != "" {
			return rep, fmt.Errorf("%s: config_path is not set in [%s]: %s sets it under [plugins.\"io.containerd.grpc.v1.cri\".registry], which a version %d config does not use for pulls; move it", path, rep.Section, misplaced, rep.Version)
		}
		if !is2x || local.mirrors {
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
		return rep, fmt.Errorf("%s: %s, a list that containerd's transfer service (its default way to pull) reads as one folder, so it ignores every hosts.toml (containerd/containerd#12415): set config_path = \"/etc/containerd/certs.d\" under [%s], or use_local_image_pull = true under [%s]", path, what, rep.Section, imagesTable2x)
	case multi && major == 0 && rep.Version < 3:
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("config_path %q is a list: fine for containerd 1.x, but containerd 2.x (which migrates this file) pulls through its transfer service, reads it as one folder and ignores hosts.toml (containerd/containerd#12415); give the containerd version to know", rep.ConfigPath))
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
	explicit bool   // use_local_image_pull, the last file's value
	other    string // the first other setting found that turns local pull on
	mirrors  bool
}

// by names what turns local pull on, "" when nothing does.
func (l localPull) by() string {
	if l.explicit {
		return "use_local_image_pull = true"
	}
	return l.other
}

func (l *localPull) fold(images, reg map[string]any) {
	set := func(name string, on bool) {
		if on && l.other == "" {
			l.other = name
		}
	}
	if v, ok := images["use_local_image_pull"].(bool); ok {
		l.explicit = v
	}
	if v, ok := images["disable_snapshot_annotations"].(bool); ok {
		set("disable_snapshot_annotations = false", !v)
	}
	if v, ok := images["discard_unpacked_layers"].(bool); ok {
		set("discard_unpacked_layers = true", v)
	}
	if v, ok := images["image_pull_with_sync_fs"].(bool); ok {
		set("image_pull_with_sync_fs = true", v)
	}
	if v, ok := images["max_concurrent_downloads"].(int64); ok {
		set(fmt.Sprintf("max_concurrent_downloads = %d", v), v != 3)
	}
	for _, k := range []string{"mirrors", "configs", "auths"} {
		if m, ok := reg[k].(map[string]any); ok && len(m) > 0 {
			set("registry."+k, true)
			if k == "mirrors" {
				l.mirrors = true
			}
		}
	}
}

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
