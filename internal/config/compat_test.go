package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, _, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hasWarning(c *Config, line int, key, msg string) bool {
	return slices.ContainsFunc(c.Warnings, func(p Problem) bool {
		return p.Line == line && p.Key == key && strings.Contains(p.Msg, msg)
	})
}

// The original repository's own example loads. Its kmsKey beside
// encryptionType AES256 (which ECR refuses) is a warning and is not sent.
func TestOriginalRepositoryExample(t *testing.T) {
	c := mustLoad(t, "testdata/original-repository.yml")
	if !c.DryRun || c.LogLevel != "trace" || c.LogFormat != "console" || c.ImageSwapPolicy != "exists" || c.ImageCopyPolicy != "delayed" {
		t.Errorf("top level: %+v", c)
	}
	a := c.Target.AWS
	if c.Target.Type != "aws" || a.AccountID != "123456789" || a.Region != "ap-southeast-2" || len(a.ECROptions.Tags) != 2 {
		t.Errorf("target: %+v", c.Target)
	}
	enc := a.ECROptions.EncryptionConfiguration
	if enc.EncryptionType != "AES256" || enc.KmsKey != "" {
		t.Errorf("encryption sent to ECR: %+v, want AES256 without kmsKey", enc)
	}
	if !hasWarning(c, 58, "target.aws.ecrOptions.encryptionConfiguration.kmsKey", "only valid with encryptionType KMS") {
		t.Errorf("no kmsKey warning with its line: %v", c.Warnings)
	}
	if len(c.Warnings) != 1 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	if !strings.Contains(a.ECROptions.AccessPolicy, "AllowCrossAccountPull") || !strings.Contains(a.ECROptions.LifecyclePolicy, "rulePriority") {
		t.Errorf("policies not read")
	}
}

// The examples of the original's guide load with no finding at all.
func TestOriginalExamplesClean(t *testing.T) {
	for _, f := range []string{"original-access-policy.yml", "original-aws-role.yml", "original-ecroptions.yml",
		"original-gcp.yml", "original-helm-config.yml", "original-lifecycle-policy.yml", "original-private-registries.yml"} {
		if c := mustLoad(t, "testdata/"+f); len(c.Warnings) != 0 {
			t.Errorf("%s: %v", f, c.Warnings)
		}
	}
}

// Keys match in any case, as the original's viper matched them: a
// miscased copy reads exactly as the original, and each miscased key is a
// warning naming the spelling to write.
func TestMiscasedKeys(t *testing.T) {
	want := mustLoad(t, "testdata/original-ecroptions.yml")
	got := mustLoad(t, "testdata/miscased-ecroptions.yml")
	if !reflect.DeepEqual(configValues(got), configValues(want)) {
		t.Errorf("miscased file reads differently:\n got %+v\nwant %+v", configValues(got), configValues(want))
	}
	for _, w := range []wantProblem{
		{3, "DryRun", `write "dryRun"`},
		{5, "logformat", `write "logFormat"`},
		{7, "IMAGECOPYPOLICY", `write "imageCopyPolicy"`},
		{10, "source.Registries", `read as "source.registries"`},
		{13, "source.registries[0].aws.accountID", `write "accountId"`},
		{21, "target.aws.AccountId", `write "accountId"`},
		{33, "target.aws.ecrOptions.encryptionConfiguration.KMSKey", `write "kmsKey"`},
	} {
		if !hasWarning(got, w.line, w.key, w.msg) {
			t.Errorf("no warning line %d %s %s in %v", w.line, w.key, w.msg, got.Warnings)
		}
	}
	if !got.IsSet("target.aws.ecrOptions.encryptionConfiguration.kmsKey") {
		t.Error("IsSet does not know a miscased key by its canonical path")
	}
}

// configValues is c without its bookkeeping (warnings, lines).
func configValues(c *Config) Config {
	v := *c
	v.Warnings, v.lines = nil, nil
	return v
}

// The original's viper.AutomaticEnv: a key the file writes is taken from
// the environment variable named after its path in upper case; a key the
// file does not write is not (viper did not know it), except those viper
// had defaults for.
func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("DRYRUN", "false")
	t.Setenv("LOGLEVEL", "info")
	t.Setenv("IMAGECOPYDEADLINE", "3s") // not in the file: not read
	t.Setenv("TARGET.AWS.REGION", "eu-west-1")
	t.Setenv("TARGET.AWS.ECROPTIONS.IMAGESCANNINGCONFIGURATION.IMAGESCANONPUSH", "false")
	t.Setenv("IMAGESWAPPOLICY", "always") // not in the file: not read
	t.Setenv("LOGFORMAT", "")             // empty: not read
	c := mustLoad(t, "testdata/original-helm-config.yml")
	if c.DryRun || c.LogLevel != "info" || c.ImageCopyDeadline != 0 || c.Target.AWS.Region != "eu-west-1" {
		t.Errorf("overrides not applied: dryRun=%t logLevel=%s region=%s", c.DryRun, c.LogLevel, c.Target.AWS.Region)
	}
	if c.ImageSwapPolicy != "exists" || c.LogFormat != "console" {
		t.Errorf("a key the file does not write, or an empty variable, was applied: swap=%s format=%s", c.ImageSwapPolicy, c.LogFormat)
	}
	if c.Target.AWS.ECROptions.ImageScanningConfiguration.ImageScanOnPush {
		t.Error("a key the original had a default for was not taken from the environment")
	}
	if !hasWarning(c, 3, "dryRun", "set from the environment variable DRYRUN") ||
		!hasWarning(c, 17, "target.aws.region", "TARGET.AWS.REGION") {
		t.Errorf("overrides not reported: %v", c.Warnings)
	}

	// A key the file writes, from the environment, with a bad value.
	t.Setenv("DRYRUN", "sometimes")
	_, _, err := Load("testdata/original-helm-config.yml", Options{})
	if err == nil || !strings.Contains(err.Error(), `line 3: dryRun: expected true or false, got "sometimes" (from the environment variable DRYRUN)`) {
		t.Errorf("bad value from the environment: %v", err)
	}
}

// imageScanOnPush is true unless the file says false, as in the original.
func TestImageScanOnPushDefault(t *testing.T) {
	on := mustParse(t, "target:\n  aws: {accountId: \"1\", region: eu-west-1}\n")
	off := mustParse(t, "target:\n  aws:\n    accountId: \"1\"\n    region: eu-west-1\n    ecrOptions:\n      imageScanningConfiguration:\n        imageScanOnPush: false\n")
	if !on.Target.AWS.ECROptions.ImageScanningConfiguration.ImageScanOnPush || off.Target.AWS.ECROptions.ImageScanningConfiguration.ImageScanOnPush {
		t.Errorf("imageScanOnPush: default %t, explicit false %t",
			on.Target.AWS.ECROptions.ImageScanningConfiguration.ImageScanOnPush,
			off.Target.AWS.ECROptions.ImageScanningConfiguration.ImageScanOnPush)
	}
}

// ECR options ECR would refuse are warnings and are not sent.
func TestECROptionsNotSent(t *testing.T) {
	c := mustParse(t, `target:
  aws:
    accountId: "1"
    region: eu-west-1
    accessPolicy: "{nope"
    ecrOptions:
      imageTagMutability: sometimes
      encryptionConfiguration: {encryptionType: ROT13, kmsKey: k}
      tags: [{key: "", value: x}, {key: team, value: a}]
`)
	o := c.Target.AWS.ECROptions
	if o.ImageTagMutability != "" || o.EncryptionConfiguration != (EncryptionConfiguration{}) || len(o.Tags) != 1 ||
		o.Tags[0].Key != "team" || o.AccessPolicy != "" || c.Target.AWS.AccessPolicy != "" {
		t.Errorf("sent to ECR: %+v", o)
	}
	for _, w := range []wantProblem{
		{5, "target.aws.accessPolicy", "invalid JSON"},
		{7, "target.aws.ecrOptions.imageTagMutability", "not sent"},
		{8, "target.aws.ecrOptions.encryptionConfiguration.encryptionType", "no encryption configuration is sent"},
		{9, "target.aws.ecrOptions.tags[0].key", "not sent"},
	} {
		if !hasWarning(c, w.line, w.key, w.msg) {
			t.Errorf("no warning line %d %s %q in %v", w.line, w.key, w.msg, c.Warnings)
		}
	}
	// KMS without a key is ECR's AWS-managed key: nothing to say.
	if c := mustParse(t, "target:\n  aws:\n    accountId: \"1\"\n    region: eu-west-1\n    ecrOptions:\n      encryptionConfiguration: {encryptionType: KMS}\n"); len(c.Warnings) != 0 {
		t.Errorf("KMS without kmsKey: %v", c.Warnings)
	}
}

// Two spellings of one key cannot both be meant: the original's choice
// between them was random.
func TestDuplicateInAnotherCase(t *testing.T) {
	errs, _ := report(t, "dryRun: true\nDryRun: false\n", Options{})
	checkProblems(t, "error", errs, []wantProblem{{2, "DryRun", `"dryRun" at line 1 is the same key in another case`}})
}
