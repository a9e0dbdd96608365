package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc), Options{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

func problems(t *testing.T, doc string) []Problem {
	t.Helper()
	_, err := Parse([]byte(doc), Options{})
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want a config error, got %v", err)
	}
	return ce.Problems
}

// With no file the target is the embedded store and the policies are the
// original's. What the components default (the mirror block, the proxy's
// timeouts, the log level, ...) is left zero here: each component has its
// defaults in one place, tested there, and cmd's TestDefaults checks that
// an empty config reaches them.
func TestDefaults(t *testing.T) {
	c := mustParse(t, "")
	if c.ImageSwapPolicy != "exists" || c.ImageCopyPolicy != "delayed" {
		t.Errorf("policies: got %s/%s", c.ImageSwapPolicy, c.ImageCopyPolicy)
	}
	if c.LogFormat != "json" || c.Proxy.OnMiss != "passthrough" || c.Proxy.Private != "deny" {
		t.Errorf("logFormat %s, onMiss %s, private %s", c.LogFormat, c.Proxy.OnMiss, c.Proxy.Private)
	}
	if c.Target.Type != "local" {
		t.Errorf("target: got %+v", c.Target)
	}
	if c.Mirror != (Mirror{}) || c.Proxy.TagTTL != 0 || len(c.Proxy.Registries) != 0 || c.LogLevel != "" || c.ImageCopyDeadline != 0 {
		t.Errorf("a component's default was filled in by the config: %+v", c)
	}
}

// Every example of the original's getting-started guide and Helm example loads.
func TestOriginalExamples(t *testing.T) {
	files, err := filepath.Glob("testdata/original-*.yml")
	if err != nil || len(files) < 6 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, _, err := Load(f, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if c.Target.Type != "aws" && c.Target.Type != "gcp" {
				t.Errorf("target type %q", c.Target.Type)
			}
		})
	}
}

func TestOriginalValues(t *testing.T) {
	c, _, err := Load("testdata/original-ecroptions.yml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := c.Target.AWS
	if a.AccountID != "123456789" || a.Region != "ap-southeast-2" || a.Role != "arn:aws:iam::123456789012:role/roleName" {
		t.Errorf("aws: %+v", a)
	}
	o := a.ECROptions
	if len(o.Tags) != 1 || o.Tags[0].Key != "CreatedBy" || !o.ImageScanningConfiguration.ImageScanOnPush ||
		o.EncryptionConfiguration.EncryptionType != "KMS" || o.ImageTagMutability != "MUTABLE" {
		t.Errorf("ecrOptions: %+v", o)
	}
	if !c.DryRun || c.ImageCopyDeadline.D() != 10*time.Second || c.ImageSwapPolicy != "always" || len(c.Source.Filters) != 2 {
		t.Errorf("top level: %+v", c)
	}
	if len(c.Source.Registries) != 1 || c.Source.Registries[0].AWS.AccountID != "123456789" {
		t.Errorf("sources: %+v", c.Source.Registries)
	}

	// accessPolicy written directly under aws reaches ecrOptions.
	c, _, err = Load("testdata/original-access-policy.yml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Target.AWS.ECROptions.AccessPolicy, "AllowCrossAccountPull") {
		t.Errorf("accessPolicy not carried into ecrOptions")
	}
	// privateRegistries become aws source registries.
	c, _, err = Load("testdata/original-private-registries.yml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Source.Registries) != 2 || c.Source.Registries[1].Type != "aws" || c.Source.Registries[1].AWS.AccountID != "234567890" {
		t.Errorf("privateRegistries: %+v", c.Source.Registries)
	}
}

func TestGenericAndEnv(t *testing.T) {
	t.Setenv("TEST_SOURCE_PASSWORD", "from-env")
	c, _, err := Load("testdata/generic.yml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Target.Type != "generic" || c.Target.Generic.Registry != "harbor.example.com/mirror" {
		t.Errorf("target: %+v", c.Target)
	}
	if got := c.Source.Registries[0].Generic.Password; got != "from-env" {
		t.Errorf("password from env: got %q", got)
	}
	if len(c.Source.Platforms) != 2 {
		t.Errorf("platforms: %v", c.Source.Platforms)
	}

	os.Unsetenv("TEST_SOURCE_PASSWORD")
	_, _, err = Load("testdata/generic.yml", Options{})
	if err == nil || !strings.Contains(err.Error(), "TEST_SOURCE_PASSWORD is not set") || !strings.Contains(err.Error(), "line 10") {
		t.Errorf("unset env: got %v", err)
	}
}

// report parses doc and returns its errors and warnings.
func report(t *testing.T, doc string, o Options) (errs, warns []Problem) {
	t.Helper()
	c, err := Parse([]byte(doc), o)
	if err == nil {
		return nil, c.Warnings
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want a config error, got %v", err)
	}
	return ce.Problems, ce.Warnings
}

type wantProblem struct {
	line     int
	key, msg string
}

func checkProblems(t *testing.T, what string, got []Problem, want []wantProblem) {
	t.Helper()
	for _, w := range want {
		if !slices.ContainsFunc(got, func(p Problem) bool {
			return p.Key == w.key && p.Line == w.line && strings.Contains(p.Msg, w.msg)
		}) {
			t.Errorf("missing %s line %d %s: %s\n got: %v", what, w.line, w.key, w.msg, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d %s(s), want %d: %v", len(got), what, len(want), got)
	}
}

// Every finding names its key and line. What the original accepted is a
// warning (with the value it falls back to, or dropped); what cannot be
// read or cannot work is an error.
func TestProblemsNameKeyAndLine(t *testing.T) {
	doc := `imageSwapPolicy: allways
imageCopyPolicy: later
logLevel: verbose
imageCopyDeadline: soon
dryRun: maybe
Source:
  filters:
    - jmespath: "obj.metadata.namespace =="
    - jmespth: "x"
  platforms: [amd64]
target:
  type: aws
  aws:
    accountId: abc
    region: eu-west-1
    ecrOptions:
      imageTagMutability: mutable
      encryptionConfiguration:
        encryptionType: KMS
      lifecyclePolicy: "{not json"
    regoin: eu-west-1
`
	errs, warns := report(t, doc, Options{})
	checkProblems(t, "error", errs, []wantProblem{
		{4, "imageCopyDeadline", "expected a duration"},
		{5, "dryRun", "expected true or false"},
		{10, "source.platforms[0]", "invalid platform"},
		{14, "target.aws.accountId", "invalid AWS account ID"},
	})
	checkProblems(t, "warning", warns, []wantProblem{
		{1, "imageSwapPolicy", `invalid value "allways", must be one of: always, exists; using exists`},
		{2, "imageCopyPolicy", `invalid value "later", must be one of: delayed, immediate, force, none; using delayed`},
		{3, "logLevel", `invalid value "verbose", must be one of: trace, debug, info, warn, error, fatal, panic, disabled; using info`},
		{6, "Source", `read as "source": keys match in any case, as in the original; write "source"`},
		{8, "source.filters[0].jmespath", "invalid JMESPath"},
		{9, "source.filters[1].jmespth", `unknown key (did you mean "jmespath"?); ignored`},
		{9, "source.filters[1].jmespath", "empty expression"},
		{17, "target.aws.ecrOptions.imageTagMutability", "not sent to ECR"},
		{20, "target.aws.ecrOptions.lifecyclePolicy", "invalid JSON policy document"},
		{21, "target.aws.regoin", `unknown key (did you mean "region"?); ignored`},
	})

	// Strict: the unknown keys are errors; the rest stays as it was.
	errs, warns = report(t, doc, Options{Strict: true})
	if !slices.ContainsFunc(errs, func(p Problem) bool { return p.Key == "target.aws.regoin" && p.Line == 21 }) ||
		!slices.ContainsFunc(errs, func(p Problem) bool { return p.Key == "source.filters[1].jmespth" && p.Line == 9 }) ||
		len(errs) != 6 || len(warns) != 8 {
		t.Errorf("strict: errors %v, warnings %v", errs, warns)
	}
}

func TestRequiredFields(t *testing.T) {
	got := problems(t, "target:\n  type: gcp\n  gcp:\n    location: us\n")
	keys := map[string]bool{}
	for _, p := range got {
		keys[p.Key] = true
		if p.Line == 0 {
			t.Errorf("%s has no line", p.Key)
		}
	}
	if !keys["target.gcp.projectId"] || !keys["target.gcp.repositoryId"] || keys["target.gcp.location"] {
		t.Errorf("got %v", got)
	}
	got = problems(t, "target:\n  type: generic\n  generic:\n    registry: http://example.com\n")
	if len(got) != 1 || !strings.Contains(got[0].Msg, "without a scheme") {
		t.Errorf("scheme: %v", got)
	}
}

func TestBadYAML(t *testing.T) {
	for _, doc := range []string{"target: [", "\t- x", "target: 3", "source:\n  registries: {a: b}", "[1, 2]"} {
		if _, err := Parse([]byte(doc), Options{}); err == nil {
			t.Errorf("%q: want an error", doc)
		}
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("HOME", t.TempDir())
	if p, err := find(""); err != nil || p != "" {
		t.Fatalf("no file: %q %v", p, err)
	}
	if err := os.WriteFile(filepath.Join(os.Getenv("HOME"), ".k8s-image-swapper.yaml"), []byte("dryRun: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, _ := find(""); !strings.HasSuffix(p, ".k8s-image-swapper.yaml") || !strings.HasPrefix(p, os.Getenv("HOME")) {
		t.Errorf("home: %q", p)
	}
	if err := os.WriteFile(".k8s-image-swapper.yml", []byte("dryRun: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, _ := find(""); p != ".k8s-image-swapper.yml" {
		t.Errorf("working folder first: %q", p)
	}
	if _, err := find("missing.yml"); err == nil {
		t.Errorf("explicit missing file: want error")
	}
}

func TestProxyPrivate(t *testing.T) {
	if c := mustParse(t, ""); c.Proxy.Private != "deny" || len(c.Proxy.SharedRepositories) != 0 {
		t.Errorf("default: private=%q shared=%v, want deny and none", c.Proxy.Private, c.Proxy.SharedRepositories)
	}
	c := mustParse(t, "proxy:\n  private: allow\n  sharedRepositories: [\"ghcr.io/acme/*\", docker.io/library/nginx]\n")
	if c.Proxy.Private != "allow" || len(c.Proxy.SharedRepositories) != 2 || c.Proxy.SharedRepositories[0] != "ghcr.io/acme/*" {
		t.Errorf("got private=%q shared=%v", c.Proxy.Private, c.Proxy.SharedRepositories)
	}
	errs, warns := report(t, "proxy:\n  private: open\n  sharedRepositories: [\"ghcr.io/[acme\"]\n  privat: deny\n", Options{})
	checkProblems(t, "error", errs, []wantProblem{
		{2, "proxy.private", `invalid value "open", must be one of: deny, allow`},
		{3, "proxy.sharedRepositories[0]", "invalid pattern"},
	})
	checkProblems(t, "warning", warns, []wantProblem{{4, "proxy.privat", `did you mean "private"`}})
}

func TestSourcePrivateImages(t *testing.T) {
	if c := mustParse(t, ""); c.Source.PrivateImages != "check" {
		t.Errorf("default: privateImages=%q, want check", c.Source.PrivateImages)
	}
	if c := mustParse(t, "source:\n  privateImages: swap\n"); c.Source.PrivateImages != "swap" {
		t.Errorf("got privateImages=%q, want swap", c.Source.PrivateImages)
	}
	errs, _ := report(t, "source:\n  privateImages: share\n", Options{})
	checkProblems(t, "error", errs, []wantProblem{
		{2, "source.privateImages", `invalid value "share", must be one of: check, swap`},
	})
}

func TestLocalPush(t *testing.T) {
	if c := mustParse(t, ""); c.Target.Local.Push.Enabled {
		t.Error("pushes are on by default")
	}
	c := mustParse(t, "target:\n  local:\n    push:\n      enabled: true\n      htpasswd: /etc/k8s-image-swapper/htpasswd\n")
	if p := c.Target.Local.Push; !p.Enabled || p.Htpasswd != "/etc/k8s-image-swapper/htpasswd" || p.TokenFile != "" {
		t.Errorf("got %+v", p)
	}
	got := problems(t, "target:\n  local:\n    push:\n      enabled: true\n")
	if len(got) != 1 || got[0].Key != "target.local.push" || got[0].Line != 3 || !strings.Contains(got[0].Msg, "htpasswd or tokenFile") {
		t.Errorf("enabled without credentials: %v", got)
	}
}

// The store is named after the proxy's address when target.local.registry
// is not set: a listen address that names no host is refused there.
func TestLocalRegistryFromProxyAddress(t *testing.T) {
	ps := problems(t, "proxy:\n  listenAddress: \":7439\"\n")
	if len(ps) != 1 || ps[0].Key != "target.local.registry" {
		t.Fatalf("problems %v", ps)
	}
	mustParse(t, "proxy:\n  listenAddress: \"0.0.0.0:7439\"\n")
	mustParse(t, "proxy:\n  listenAddress: \":7439\"\ntarget:\n  local:\n    registry: mirror.local:7439\n")
}
