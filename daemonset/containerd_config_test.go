package daemonset

import (
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
		wantErr      []string // substrings of the error
		wantVersion  int
		wantSection  string
		wantDirs     []string
		wantDefault  bool
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
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.toml")
			writeFile(t, path, c.config, 0o644)
			for name, content := range c.imports {
				writeFile(t, filepath.Join(dir, name), content, 0o644)
			}
			rep, err := CheckContainerdConfig(path)
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
			if !rep.Covers(c.wantDirs[0]+"/") || rep.Covers("/elsewhere") {
				t.Errorf("Covers wrong for %v", rep.Dirs)
			}
		})
	}
}

func TestCheckContainerdConfigMissingFile(t *testing.T) {
	if _, err := CheckContainerdConfig(filepath.Join(t.TempDir(), "nope.toml")); err == nil {
		t.Fatal("no error")
	}
}
