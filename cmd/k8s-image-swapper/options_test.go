//go:build !nodeproxy

package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/cloudtest"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy"
)

func parse(t *testing.T, doc string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(doc), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The proxy serves every configured source registry under the host name
// the targets and hosts.toml use: one rule for ECR, China regions included.
func TestSourceRegistriesServed(t *testing.T) {
	c := parse(t, `source:
  registries:
    - type: aws
      aws: {accountId: "123456789012", region: cn-north-1}
    - type: aws
      aws: {accountId: "123456789012", region: eu-west-1}
    - type: gcp
      gcp: {location: europe-west1, projectId: p, repositoryId: r}
`)
	o := proxyOptions(c)
	for _, want := range []string{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "europe-west1-docker.pkg.dev"} {
		if !slices.Contains(o.Registries, want) {
			t.Errorf("%s not among the registries served: %v", want, o.Registries)
		}
	}
}

// One host rule serves every caller: hosts.toml, the proxy's served list,
// the target's references and the ECR keychain all name an ECR registry in
// a China region alike.
func TestOneHostRule(t *testing.T) {
	const account, region = "123456789012", "cn-north-1"
	want := registry.ECRHost(account, region)
	c := parse(t, fmt.Sprintf("source:\n  registries:\n    - type: aws\n      aws: {accountId: %q, region: %s}\n"+
		"target:\n  aws: {accountId: %q, region: %s}\n", account, region, account, region))
	var hosts []string
	for _, h := range hostsFor(c) {
		hosts = append(hosts, h.Name)
	}
	if !slices.Contains(hosts, want) {
		t.Errorf("containerd-config writes %v, not %s", hosts, want)
	}
	if o := proxyOptions(c); !slices.Contains(o.Registries, want) {
		t.Errorf("proxy serves %v, not %s", o.Registries, want)
	}
	s := cloudSources(c)
	if len(s.ECR) != 1 || registry.ECRHost(s.ECR[0].AccountID, s.ECR[0].Region) != want {
		t.Errorf("ECR keychain for %+v", s.ECR)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	tg, err := target.New(context.Background(), targetSpec(c))
	if err != nil {
		t.Fatal(err)
	}
	if tg.Mapper().Host != want {
		t.Errorf("target references name %s, want %s", tg.Mapper().Host, want)
	}
}

func TestPrivateFromConfig(t *testing.T) {
	o := proxyOptions(parse(t, "proxy:\n  private: allow\n  sharedRepositories: [\"ghcr.io/acme/*\"]\n"))
	if o.Private != policy.PrivateAllow || len(o.SharedRepositories) != 1 || o.SharedRepositories[0] != "ghcr.io/acme/*" {
		t.Errorf("from config: private=%q shared=%v", o.Private, o.SharedRepositories)
	}
}

func TestWebhookOptions(t *testing.T) {
	o := webhookOptions(parse(t, `dryRun: true
imageSwapPolicy: always
imageCopyPolicy: immediate
imageCopyDeadline: 3s
source:
  privateImages: swap
  filters:
    - jmespath: "obj.metadata.namespace == 'kube-system'"
target:
  type: generic
  generic: {registry: "target.example.com"}
`))
	if !o.DryRun || o.SwapPolicy != policy.SwapAlways || o.CopyPolicy != policy.CopyImmediate ||
		o.CopyDeadline != 3*time.Second || o.Filter.Empty() || o.PrivateImages != policy.PrivateImagesSwap {
		t.Fatalf("options %+v", o)
	}
}

// A config as users write it, without imageScanningConfiguration, creates
// repositories that scan on push: the original's default.
func TestScanOnPushByDefault(t *testing.T) {
	s := cloudtest.NewAWS(t, cloudtest.AWSOptions{})
	s.UseEnvCredentials(t)
	c := parse(t, fmt.Sprintf("target:\n  aws:\n    accountId: %q\n    region: %s\n", s.AccountID, s.Region))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tg, err := target.New(ctx, targetSpec(c), target.WithAWS(s.TargetOptions()))
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.EnsureRepository(ctx, "quay.io/x/scanned"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Repository("quay.io/x/scanned"); !got.ScanOnPush {
		t.Fatalf("created without scan on push: %+v", got)
	}
}

// With no config file the components run with their own defaults: the
// config passes nothing of its own for what it does not set.
func TestDefaults(t *testing.T) {
	c := parse(t, "")
	if got, want := summary(c), "target=local(./data) swap=exists copy=delayed deadline=8s sources=0 filters=0 platforms=0 dryRun=false"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if s := targetSpec(c); s.Local.Path != "./data" || s.Local.Registry != "127.0.0.1:7439" {
		t.Errorf("local target %+v", s.Local)
	}
	if !slices.Equal(servedRegistries(c), proxy.DefaultRegistries) {
		t.Errorf("registries %v", servedRegistries(c))
	}
	if o := webhookOptions(c); o.CopyDeadline != 0 || o.TagTTL != 0 {
		t.Errorf("webhook options %+v", o)
	}
	if o := proxyOptions(c); o.WaitTimeout != 0 || o.UpstreamTimeout != 0 {
		t.Errorf("proxy options %+v", o)
	}
	if o := fetchOptions(c, sourceAccess{}, "", nil); o.TagTTL != 0 || o.Timeout != 0 {
		t.Errorf("fetch options %+v", o)
	}
}

// An explicit mirror.maxRetries: 0 means no retries; unset, the engine's
// default applies.
func TestMaxRetriesZero(t *testing.T) {
	if r := maxRetries(parse(t, "mirror:\n  maxRetries: 0\n")); r >= 0 {
		t.Errorf("maxRetries: 0 gives the engine %d, want none (negative)", r)
	}
	if r := maxRetries(parse(t, "mirror:\n  maxRetries: 2\n")); r != 2 {
		t.Errorf("maxRetries: 2 gives %d", r)
	}
	if r := maxRetries(parse(t, "")); r != 0 {
		t.Errorf("unset gives %d, want the engine's default (0)", r)
	}
}

// source.copyReferrers is on unless the file says false.
func TestCopyReferrers(t *testing.T) {
	for doc, skip := range map[string]bool{
		"":                                  false,
		"source:\n  copyReferrers: true\n":  false,
		"source:\n  copyReferrers: false\n": true,
	} {
		o, err := engineOptions(parse(t, doc))
		if err != nil {
			t.Fatal(err)
		}
		if o.SkipReferrers != skip {
			t.Errorf("%q: SkipReferrers %v, want %v", doc, o.SkipReferrers, skip)
		}
	}
}
