package containerdcfg

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCheckContainerdConfig(t *testing.T) {
	const images = `plugins."io.containerd.cri.v1.images".registry`
	cases := []struct {
		name, config string
		imports      map[string]string
		major        int      // containerd's major version given to the check; 0 unknown
		wantErr      []string // substrings of the error
		wantWarn     string   // substring of a warning; "" means none
		wantVersion  int
		wantSection  string
		wantDirs     []string
		wantDefault  bool
		wantLocal    string // Report.LocalPullBy
	}{{
		name: "containerd 1.6, version 2",
		config: `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
`,
		wantVersion: 2, wantSection: `plugins."io.containerd.grpc.v1.cri".registry`,
		wantDirs: []string{"/etc/containerd/certs.d"},
	}, {
		name:        "containerd 1.x, version 1",
		config:      "[plugins.cri.registry]\n  config_path = \"/etc/containerd/certs.d/\"\n",
		wantVersion: 1, wantSection: "plugins.cri.registry", wantDirs: []string{"/etc/containerd/certs.d"},
	}, {
		name: "containerd 2.x, version 3",
		config: `version = 3
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '/etc/containerd/certs.d'
`,
		wantVersion: 3, wantSection: images, wantDirs: []string{"/etc/containerd/certs.d"},
	}, {
		name:    "no config_path",
		config:  "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause:3.9\"\n",
		wantErr: []string{"config_path is not set", `plugins."io.containerd.grpc.v1.cri".registry`},
	}, {
		name:    "mirrors instead",
		config:  "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://m\"]\n",
		wantErr: []string{"config_path is not set"},
	}, {
		name:    "mirrors and config_path",
		config:  "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://m\"]\n",
		wantErr: []string{"both config_path and mirrors"},
	}, {
		name:    "malformed",
		config:  "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry\n  config_path = \"x\"\n",
		wantErr: []string{"not valid TOML", "line 2"},
	}, {
		name:    "version 3 with the 1.x table",
		config:  "version = 3\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
		wantErr: []string{"move it", images},
	}, {
		name:    "version 3 default, transfer service",
		config:  "version = 3\n",
		wantErr: []string{"config_path is not set", "12415", images},
	}, {
		name:        "version 3 default, local pull",
		config:      "version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\n  use_local_image_pull = true\n",
		wantVersion: 3, wantSection: images, wantDefault: true,
		wantDirs: []string{"/etc/containerd/certs.d", "/etc/docker/certs.d"},
	}, {
		name:    "version 3 list, transfer service",
		config:  "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n",
		wantErr: []string{"12415"},
	}, {
		name:        "version 3 list, discard_unpacked_layers (EKS)",
		config:      "version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\n  discard_unpacked_layers = true\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n",
		wantVersion: 3, wantSection: images,
		wantDirs: []string{"/etc/containerd/certs.d", "/etc/docker/certs.d"},
	}, {
		name:        "set in an import",
		config:      "version = 3\nimports = [\"conf.d/*.toml\"]\n",
		imports:     map[string]string{"conf.d/registry.toml": "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/cri/hosts\"\n"},
		wantVersion: 3, wantSection: images, wantDirs: []string{"/etc/cri/hosts"},
	}, {
		name:        "version 2 list, containerd unknown: accepted with a warning",
		config:      v2List,
		wantVersion: 2, wantSection: v2Section, wantDirs: []string{"/etc/containerd/certs.d", "/etc/docker/certs.d"},
		wantWarn: "containerd 2.x",
	}, {
		name:        "version 2 list on containerd 1.x",
		config:      v2List,
		major:       1,
		wantVersion: 2, wantSection: v2Section, wantDirs: []string{"/etc/containerd/certs.d", "/etc/docker/certs.d"},
	}, {
		name:    "version 2 list on containerd 2.x (migrated, transfer service)",
		config:  v2List,
		major:   2,
		wantErr: []string{"12415", v2Section, "use_local_image_pull"},
	}, {
		name:   "version 2 list on containerd 2.x, discard_unpacked_layers migrated (EKS AL2 upgraded)",
		config: v2List + v2Runtimes,
		major:  2, wantVersion: 2, wantSection: v2Section,
		wantDirs: []string{"/etc/containerd/certs.d", "/etc/docker/certs.d"}, wantLocal: "discard_unpacked_layers = true",
	}, {
		name:    "version 2 list on containerd 2.x, discard_unpacked_layers without runtimes is not migrated",
		config:  v2List + "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  discard_unpacked_layers = true\n",
		major:   2,
		wantErr: []string{"12415"},
	}, {
		name:    "version 2 without config_path on containerd 2.x: the default list",
		config:  "version = 2\n",
		major:   2,
		wantErr: []string{"config_path is not set, so containerd 2.x uses", "12415"},
	}, {
		name:    "version 3 on containerd 1.x",
		config:  "version = 3\n",
		major:   1,
		wantErr: []string{"containerd 1.x cannot read"},
	}, {
		name:    "use_local_image_pull turned off again in an import",
		config:  "version = 3\nimports = [\"off.toml\"]\n[plugins.\"io.containerd.cri.v1.images\"]\n  use_local_image_pull = true\n",
		imports: map[string]string{"off.toml": "version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\n  use_local_image_pull = false\n"},
		wantErr: []string{"12415"},
	}, {
		name:        "version 3 list with max_concurrent_downloads",
		config:      "version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\n  max_concurrent_downloads = 5\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/a:/b\"\n",
		wantVersion: 3, wantSection: images, wantDirs: []string{"/a", "/b"}, wantLocal: "max_concurrent_downloads = 5",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.toml")
			writeFile(t, path, c.config, 0o644)
			for name, content := range c.imports {
				writeFile(t, filepath.Join(dir, name), content, 0o644)
			}
			rep, err := Check(path, c.major)
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("no error; report %+v", rep)
				}
				for _, s := range c.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Version != c.wantVersion || rep.Section != c.wantSection || !slices.Equal(rep.Dirs, c.wantDirs) || rep.Default != c.wantDefault {
				t.Errorf("report %+v", rep)
			}
			if c.wantLocal != "" && rep.LocalPullBy != c.wantLocal {
				t.Errorf("local pull by %q, want %q", rep.LocalPullBy, c.wantLocal)
			}
			warnings := strings.Join(rep.Warnings, "\n")
			if (c.wantWarn == "") != (warnings == "") || !strings.Contains(warnings, c.wantWarn) {
				t.Errorf("warnings %q, want %q", warnings, c.wantWarn)
			}
			if !rep.Covers(c.wantDirs[0]+"/") || rep.Covers("/elsewhere") {
				t.Errorf("Covers wrong for %v", rep.Dirs)
			}
		})
	}
}

const (
	v2Runtimes = "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  discard_unpacked_layers = true\n" +
		"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n"
	v2Section = `plugins."io.containerd.grpc.v1.cri".registry`
	v2List    = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n"
)

func TestParseMajor(t *testing.T) {
	for in, want := range map[string]int{"": 0, "containerd://2.1.4": 2, "v2.4.2": 2, "1.6.20~ds1": 1, "2": 2, " v1.7.27 ": 1} {
		if got, err := ParseMajor(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"docker://24.0", "two", "0.1"} {
		if _, err := ParseMajor(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestReportFix(t *testing.T) {
	r := Report{Path: "/etc/containerd/config.toml", Version: 3, Section: sectionName(3), SetIn: "containerd's defaults", Default: true}
	fix := r.Fix("/etc/containerd/certs.d/")
	for _, want := range []string{"in /etc/containerd/config.toml", `[plugins."io.containerd.cri.v1.images".registry]`, `config_path = "/etc/containerd/certs.d"`, "use_local_image_pull = true"} {
		if !strings.Contains(fix, want) {
			t.Errorf("fix lacks %q:\n%s", want, fix)
		}
	}
	r = Report{Path: "/c.toml", Version: 2, Section: sectionName(2), Major: 1}
	if fix := r.Fix("/x"); strings.Contains(fix, "use_local_image_pull") || !strings.Contains(fix, v2Section) {
		t.Errorf("containerd 1.x fix:\n%s", fix)
	}
}

func TestCheckContainerdConfigMissingFile(t *testing.T) {
	if _, err := Check(filepath.Join(t.TempDir(), "nope.toml"), 0); err == nil {
		t.Fatal("no error")
	}
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
