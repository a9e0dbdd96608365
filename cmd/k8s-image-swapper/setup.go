package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/dryrun"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/logging"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// loadConfig reads --config (strictly with --strict-config), then applies
// --log-level and --log-format when given; a bad file is exit code 2.
func loadConfig(cmd *cobra.Command) (*config.Config, string, error) {
	return loadConfigWith(cmd, config.Options{})
}

func loadConfigWith(cmd *cobra.Command, o config.Options) (*config.Config, string, error) {
	f := cmd.Flags()
	path, _ := f.GetString("config")
	if strict, _ := f.GetBool("strict-config"); strict {
		o.Strict = true
	}
	c, file, err := config.Load(path, o)
	if err != nil {
		return nil, file, &exitError{code: 2, err: err}
	}
	if f.Changed("log-level") {
		c.LogLevel, _ = f.GetString("log-level")
		if _, ok := logging.ParseLevel(c.LogLevel); !ok {
			c.Warnings = append(c.Warnings, config.Problem{Key: "--log-level",
				Msg: fmt.Sprintf("invalid value %q, must be one of: %s; using info", c.LogLevel, strings.Join(logging.LevelNames(), ", "))})
			c.LogLevel = ""
		}
	}
	if f.Changed("log-format") {
		s, _ := f.GetString("log-format")
		var err error
		if c.LogFormat, err = logging.ParseFormat(s); err != nil {
			c.Warnings = append(c.Warnings, config.Problem{Key: "--log-format", Msg: fmt.Sprintf("%v; using %s", err, c.LogFormat)})
		}
	}
	return c, file, nil
}

// newLogger sets up logging as the config says and logs the config's
// warnings, each with its key and line.
func newLogger(c *config.Config) *slog.Logger {
	l := logging.New(os.Stderr, c.LogLevel, c.LogFormat)
	slog.SetDefault(l)
	for _, w := range c.Warnings {
		l.Warn("config: "+w.String(), "key", w.Key, "line", w.Line)
	}
	return l
}

// closeTarget releases what a target holds open (the local store).
func closeTarget(t target.Target) {
	if cl, ok := t.(interface{ Close() error }); ok {
		_ = cl.Close()
	}
}

// openTarget opens the target the config names, and what reaching its
// sources takes; the caller closes the target (closeTarget).
func openTarget(ctx context.Context, c *config.Config, tune ...func(*target.Spec)) (target.Target, sourceAccess, error) {
	spec := targetSpec(c)
	for _, f := range tune {
		f(&spec)
	}
	t, err := target.New(ctx, spec)
	if err != nil {
		return nil, sourceAccess{}, fmt.Errorf("open target: %w", err)
	}
	src, err := newSourceAccess(ctx, c)
	if err != nil {
		closeTarget(t)
		return nil, sourceAccess{}, err
	}
	return t, src, nil
}

// sourceAccess is what reaching the sources takes: the config's
// credentials and plain-HTTP hosts, and the cloud registries' tokens.
type sourceAccess struct {
	creds    *auth.Sources
	keychain authn.Keychain
}

func newSourceAccess(ctx context.Context, c *config.Config) (sourceAccess, error) {
	creds, err := sourceCredentials(c)
	if err != nil {
		return sourceAccess{}, err
	}
	keychain, err := target.SourceKeychain(ctx, cloudSources(c))
	if err != nil {
		return sourceAccess{}, fmt.Errorf("source credentials: %w", err)
	}
	return sourceAccess{creds: creds, keychain: keychain}, nil
}

// openEngine opens the target and a copy engine into it that reaches the
// sources itself; the caller closes the target (closeTarget).
func openEngine(ctx context.Context, c *config.Config, log *slog.Logger) (target.Target, *mirror.Engine, error) {
	t, src, err := openTarget(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	e, err := newEngine(c, t, src, nil, log)
	if err != nil {
		closeTarget(t)
		return nil, nil, err
	}
	return t, e, nil
}

// newEngine is the copy engine into t. It reads sources through fetched
// when set (the proxy's and the hub's fetch layer, so a copy reuses what
// pulls fetched), else straight.
func newEngine(c *config.Config, t target.Target, src sourceAccess, fetched *fetch.Sources, log *slog.Logger) (*mirror.Engine, error) {
	o, err := engineOptions(c)
	if err != nil {
		return nil, err
	}
	o.Sources, o.SourceKeychain, o.Logger = src.creds, src.keychain, log
	if fetched != nil {
		o.SourceTransport = fetched.Transport(target.NewTransport(false))
		o.SourceBlobs = fetched.CopyLayer
	}
	return mirror.New(t, o), nil
}

// targetName describes a target for logs: its kind and where it is.
func targetName(s target.Spec) string {
	switch s.Kind {
	case "aws":
		return fmt.Sprintf("aws(%s/%s)", s.AWS.AccountID, s.AWS.Region)
	case "gcp":
		return fmt.Sprintf("gcp(%s/%s/%s)", s.GCP.Location, s.GCP.ProjectID, s.GCP.RepositoryID)
	case "generic":
		return fmt.Sprintf("generic(%s)", s.Generic.Registry)
	default:
		return fmt.Sprintf("local(%s)", s.Local.Path)
	}
}

// setDryRun exports k8s_image_swapper_dry_run and, in a dry run, says so
// now and every minute.
func setDryRun(ctx context.Context, c *config.Config, log *slog.Logger) {
	if !c.DryRun {
		metrics.DryRun.Set(0)
		return
	}
	metrics.DryRun.Set(1)
	go dryrun.Warn(ctx, log, dryrun.Interval)
}
