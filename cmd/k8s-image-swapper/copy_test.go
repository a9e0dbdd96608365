package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), ".k8s-image-swapper.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCopyCommand(t *testing.T) {
	src := registryproc.Start(t, registryproc.Options{})
	dst := registryproc.Start(t, registryproc.Options{})
	digest := images.Push(t, src.Addr+"/library/app:1", images.Image(t, 1024, 2, "linux/amd64"))
	cfg := writeConfig(t, `logLevel: error
source:
  registries:
    - type: generic
      generic: {registry: "`+src.Addr+`", insecure: true}
target:
  type: generic
  generic:
    registry: `+dst.Addr+`
    insecure: true
`)
	out, err := run(t, "copy", "--config", cfg, src.Addr+"/library/app:1")
	if err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	want := src.Addr + "/library/app:1 -> " + dst.Addr + "/" + strings.ReplaceAll(src.Addr, ":", "_") + "/library/app@" + digest.String()
	if strings.TrimSpace(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if dst.Count("PUT", "/manifests/1") != 1 {
		t.Errorf("the target got no manifest")
	}

	// One failure among several: non-zero, naming the image that failed.
	out, err = run(t, "copy", "--config", cfg, src.Addr+"/library/app:1", src.Addr+"/library/missing:1", "Bad//Ref")
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("want a failure, got %v", err)
	}
	if !strings.Contains(err.Error(), "library/missing:1") || !strings.Contains(err.Error(), "Bad//Ref") || !strings.Contains(err.Error(), "2 of 3") {
		t.Errorf("error does not name each failure: %v", err)
	}
	if !strings.Contains(out, "already present") {
		t.Errorf("the present image was not reported: %q", out)
	}
}

func TestMisspeltKey(t *testing.T) {
	cfg := writeConfig(t, "target:\n  type: generic\n  generic:\n    registry: r.example.com\n    insecure: true\nimageSwapPolicy: exists\nimagecopyPolicy: force\n")
	_, err := run(t, "copy", "--config", cfg, "nginx")
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("want exit code 2, got %v", err)
	}
	if !strings.Contains(err.Error(), "line 7: imagecopyPolicy: unknown key") || !strings.Contains(err.Error(), `"imageCopyPolicy"`) {
		t.Errorf("error does not name key and line: %v", err)
	}
	_, err = run(t, "config", "validate", "--config", cfg)
	if err == nil || exitCode(err) != 2 {
		t.Errorf("config validate: want exit 2, got %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := writeConfig(t, "imageSwapPolicy: always\ntarget:\n  aws:\n    accountId: 123456789\n    region: ap-southeast-2\n")
	out, err := run(t, "config", "validate", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(out, "valid: target=aws(123456789/ap-southeast-2) swap=always") {
		t.Errorf("summary: %q", out)
	}
}
