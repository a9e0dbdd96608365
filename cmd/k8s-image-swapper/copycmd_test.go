package main

import (
	"bytes"
	"context"
	"io"
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

// runSplit runs the command line with stdout and stderr apart.
func runSplit(t *testing.T, stderr io.Writer, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(stderr)
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
	var progress bytes.Buffer
	out, err := runSplit(t, &progress, "copy", "--config", cfg, src.Addr+"/library/app:1")
	if err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	want := src.Addr + "/library/app:1 -> " + dst.Addr + "/" + strings.ReplaceAll(src.Addr, ":", "_") + "/library/app@" + digest.String()
	if strings.TrimSpace(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
	// Not a terminal: plain progress lines and a summary, on stderr.
	for _, line := range []string{src.Addr + "/library/app:1: copying\n", "copied in ", "1 image(s): 1 copied, 0 already present, 0 failed; "} {
		if !strings.Contains(progress.String(), line) {
			t.Errorf("progress %q lacks %q", progress.String(), line)
		}
	}
	if dst.Count("PUT", "/manifests/1") != 1 {
		t.Errorf("the target got no manifest")
	}

	// --quiet: the result lines only.
	progress.Reset()
	out, err = runSplit(t, &progress, "copy", "--quiet", "--config", cfg, src.Addr+"/library/app:1")
	if err != nil || !strings.Contains(out, "already present") || progress.Len() != 0 {
		t.Errorf("--quiet: %v, stdout %q, stderr %q", err, out, progress.String())
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

// An unknown key is a warning at start-up (the original ignored it), an
// error in `config validate` and with --strict-config; a miscased key is
// read, with a warning.
func TestUnknownAndMiscasedKeys(t *testing.T) {
	cfg := writeConfig(t, "target:\n  type: generic\n  generic:\n    registry: r.example.com\n    insecure: true\nimageSwapPolicy: exists\nimageCopyPolicyy: force\nImageCopyDeadline: 3s\n")
	_, err := run(t, "copy", "--strict-config", "--config", cfg, "nginx")
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), `line 7: imageCopyPolicyy: unknown key (did you mean "imageCopyPolicy"?)`) {
		t.Fatalf("--strict-config: want exit code 2 naming key and line, got %v", err)
	}
	out, err := run(t, "config", "validate", "--config", cfg)
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "line 7: imageCopyPolicyy: unknown key") ||
		!strings.Contains(err.Error(), `warning: line 8: ImageCopyDeadline: read as "imageCopyDeadline"`) {
		t.Errorf("config validate: want exit 2 with the error and the warning, got %v (%s)", err, out)
	}

	// Without the unknown key: valid, with the warning and its line.
	cfg = writeConfig(t, "ImageCopyDeadline: 3s\ntarget:\n  aws: {accountId: \"1\", region: eu-west-1, ecrOptions: {encryptionConfiguration: {kmsKey: k}}}\n")
	out, err = run(t, "config", "validate", "--config", cfg)
	if err != nil {
		t.Fatalf("config validate: %v", err)
	}
	for _, want := range []string{"valid: target=aws(1/eu-west-1) swap=exists copy=delayed deadline=3s",
		`  warning: line 1: ImageCopyDeadline: read as "imageCopyDeadline"`,
		"  warning: line 3: target.aws.ecrOptions.encryptionConfiguration.kmsKey: only valid with encryptionType KMS"} {
		if !strings.Contains(out, want) {
			t.Errorf("config validate output lacks %q:\n%s", want, out)
		}
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
