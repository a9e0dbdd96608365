package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/aws"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/gcp"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy"
)

// This file is where the config file meets the components: each takes its
// own options, and these functions fill them from the config. Nothing
// below cmd reads internal/config.

// targetSpec is the target the config names.
func targetSpec(c *config.Config) target.Spec {
	t := c.Target
	return target.Spec{
		Kind:    t.Type,
		AWS:     awsTarget(t.AWS),
		GCP:     gcp.Repository{Location: t.GCP.Location, ProjectID: t.GCP.ProjectID, RepositoryID: t.GCP.RepositoryID},
		Generic: target.GenericSpec{Registry: t.Generic.Registry, Insecure: t.Generic.Insecure, Username: t.Generic.Username, Password: t.Generic.Password},
		Local: target.LocalSpec{
			Path: cmp.Or(t.Local.Path, target.DefaultLocalPath),
			// Named after the address that serves it.
			Registry: cmp.Or(t.Local.Registry, proxyAddress(c)),
		},
	}
}

// proxyAddress is where the proxy listens.
func proxyAddress(c *config.Config) string {
	return cmp.Or(c.Proxy.ListenAddress, proxy.DefaultAddress)
}

func awsRegistry(a config.AWS) aws.Registry {
	return aws.Registry{AccountID: a.AccountID, Region: a.Region, Role: a.Role}
}

func awsTarget(a config.AWS) aws.Config {
	o := a.ECROptions
	r := aws.Repositories{
		AccessPolicy:    o.AccessPolicy,
		LifecyclePolicy: o.LifecyclePolicy,
		TagMutability:   o.ImageTagMutability,
		ScanOnPush:      o.ImageScanningConfiguration.ImageScanOnPush,
		EncryptionType:  o.EncryptionConfiguration.EncryptionType,
		KMSKey:          o.EncryptionConfiguration.KmsKey,
	}
	for _, t := range o.Tags {
		r.Tags = append(r.Tags, aws.Tag{Key: t.Key, Value: t.Value})
	}
	return aws.Config{Registry: awsRegistry(a), Prefix: a.Prefix, Repositories: r}
}

// maxRetries is mirror.maxRetries for the engine: the file's 0 is none,
// which the engine spells negative (its 0 takes its default).
func maxRetries(c *config.Config) int {
	if c.IsSet("mirror.maxRetries") && c.Mirror.MaxRetries == 0 {
		return -1
	}
	return c.Mirror.MaxRetries
}

// cloudSources are the source registries whose tokens come from a cloud.
func cloudSources(c *config.Config) target.CloudSources {
	s := target.CloudSources{AnyGAR: c.Target.Type == "gcp"}
	for _, r := range c.Source.Registries {
		switch r.Type {
		case "aws":
			s.ECR = append(s.ECR, awsRegistry(r.AWS))
		case "gcp":
			s.GAR = append(s.GAR, r.GCP.Location)
		}
	}
	return s
}

// sourceCredentials are the generic source registries: their credentials
// and plain-HTTP hosts.
func sourceCredentials(c *config.Config) (*auth.Sources, error) {
	var srcs []auth.Source
	for _, r := range c.Source.Registries {
		if g := r.Generic; r.Type == "generic" {
			srcs = append(srcs, auth.Source{Registry: g.Registry, Username: g.Username, Password: g.Password, Insecure: g.Insecure})
		}
	}
	return auth.NewSources(srcs)
}

// servedRegistries are the registries the proxy serves (and containerd
// reaches through it): proxy.registries, then every source registry.
func servedRegistries(c *config.Config) []string {
	regs := slices.Clone(c.Proxy.Registries)
	if len(regs) == 0 {
		regs = slices.Clone(proxy.DefaultRegistries)
	}
	for _, r := range c.Source.Registries {
		if h := r.Host(); h != "" && !slices.Contains(regs, h) {
			regs = append(regs, h)
		}
	}
	return regs
}

// engineOptions are the mirror block and source.platforms; the caller sets
// the sources' credentials and transport and the logger.
func engineOptions(c *config.Config) (mirror.Options, error) {
	platforms := make([]v1.Platform, 0, len(c.Source.Platforms))
	for _, p := range c.Source.Platforms {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			return mirror.Options{}, fmt.Errorf("source.platforms: %w", err)
		}
		platforms = append(platforms, *pl)
	}
	return mirror.Options{
		Workers:    c.Mirror.Workers,
		QueueSize:  c.Mirror.QueueSize,
		ExistsTTL:  c.Mirror.ExistsTTL.D(),
		MissingTTL: c.Mirror.MissingTTL.D(),
		Retries:    maxRetries(c),
		RetryWait:  c.Mirror.RetryWaitMax.D(),
		Platforms:  platforms,
		// source.copyReferrers defaults to true: only an explicit false skips.
		SkipReferrers: c.IsSet("source.copyReferrers") && !c.Source.CopyReferrers,
	}, nil
}

// fetchOptions are the proxy's source side: the proxy block's tag TTL and
// upstream timeout, and how sources are reached.
func fetchOptions(c *config.Config, src sourceAccess, spoolDir string, log *slog.Logger) fetch.Options {
	return fetch.Options{
		Credentials: src.creds,
		Keychain:    src.keychain,
		Timeout:     c.Proxy.UpstreamTimeout.D(),
		TagTTL:      c.Proxy.TagTTL.D(),
		SpoolDir:    spoolDir,
		Logger:      log,
	}
}

// proxyOptions are the proxy block and the source registries of c. Target,
// Sources, Mirror and Logger are left to the caller.
func proxyOptions(c *config.Config) proxy.Options {
	var push *proxy.PushOptions
	if lp := c.Target.Local.Push; c.Target.Type == "local" && lp.Enabled {
		push = &proxy.PushOptions{Htpasswd: lp.Htpasswd, TokenFile: lp.TokenFile}
	}
	return proxy.Options{
		Push:               push,
		Registries:         servedRegistries(c),
		OnMiss:             c.Proxy.OnMiss,
		WaitTimeout:        c.Proxy.WaitTimeout.D(),
		UpstreamTimeout:    c.Proxy.UpstreamTimeout.D(),
		Private:            c.Proxy.Private,
		SharedRepositories: c.Proxy.SharedRepositories,
	}
}
