package webhook

import (
	"context"
	"log/slog"
	"time"
)

// dryRunMessage is what a dry run says at start, every DryRunInterval and on /readyz.
const dryRunMessage = "dry run (dryRun: true): images are neither copied nor rewritten. " +
	"The original chart's default was dryRun: true, which the original ignored; set dryRun: false to swap images"

// DryRunInterval is how often a running dry run says so again.
const DryRunInterval = time.Minute

// WarnDryRun logs dryRunMessage now and every interval until ctx ends, so
// that a dry run left on by mistake is never silent.
func WarnDryRun(ctx context.Context, log *slog.Logger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		log.Warn(dryRunMessage)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
