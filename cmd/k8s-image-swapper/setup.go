package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/logging"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
)

// loadConfig reads --config; a bad file is exit code 2.
func loadConfig(cmd *cobra.Command) (*config.Config, string, error) {
	path, _ := cmd.Flags().GetString("config")
	c, file, err := config.Load(path)
	if err != nil {
		return nil, file, &exitError{code: 2, err: err}
	}
	return c, file, nil
}

func newLogger(c *config.Config) *slog.Logger {
	l := logging.New(os.Stderr, c.LogLevel, c.LogFormat)
	slog.SetDefault(l)
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
	t, err := target.New(ctx, c.Target)
	if err != nil {
		return nil, fmt.Errorf("open target: %w", err)
	}
	sources, err := auth.NewSources(c.Source.Registries)
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
	keychain, err := target.SourceKeychain(ctx, c.Source.Registries)
	if err != nil {
		return nil, fmt.Errorf("source credentials: %w", err)
	}
	o := mirror.Options{
		Workers:    c.Mirror.Workers,
		QueueSize:  c.Mirror.QueueSize,
		ExistsTTL:  c.Mirror.ExistsTTL.D(),
		MissingTTL: c.Mirror.MissingTTL.D(),
		Retries:    c.Mirror.MaxRetries,
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
