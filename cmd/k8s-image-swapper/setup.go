package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/logging"
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
	c, file, err := config.LoadWith(path, o)
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

// newEngine opens the target and the copy engine the config describes;
// tune changes the engine's options (the proxy shares its source fetches).
func newEngine(ctx context.Context, c *config.Config, log *slog.Logger, tune ...func(*mirror.Options)) (*mirror.Engine, error) {
	t, err := target.New(ctx, targetSpec(c))
	if err != nil {
		return nil, fmt.Errorf("open target: %w", err)
	}
	sources, err := sourceCredentials(c)
	if err != nil {
		return nil, err
	}
	platforms := make([]v1.Platform, 0, len(c.Source.Platforms))
	for _, p := range c.Source.Platforms {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("source.platforms: %w", err)
		}
		platforms = append(platforms, *pl)
	}
	keychain, err := target.SourceKeychain(ctx, cloudSources(c))
	if err != nil {
		return nil, fmt.Errorf("source credentials: %w", err)
	}
	o := mirror.Options{
		Workers:    c.Mirror.Workers,
		QueueSize:  c.Mirror.QueueSize,
		ExistsTTL:  c.Mirror.ExistsTTL.D(),
		MissingTTL: c.Mirror.MissingTTL.D(),
		Retries:    maxRetries(c),
		RetryWait:  c.Mirror.RetryWaitMax.D(),
		Platforms:  platforms,
		Sources:    sources,
		// Cloud (aws, gcp) source registries authenticate with their tokens.
		SourceKeychain: keychain,
		Logger:         log,
	}
	for _, f := range tune {
		f(&o)
	}
	return mirror.New(t, o), nil
}
