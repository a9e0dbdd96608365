// Package dryrun is what a dry run (dryRun: true) tells its operator, the
// same from the webhook and the proxy: at start, every Interval, and on /readyz.
package dryrun

import (
	"context"
	"log/slog"
	"time"
)

// Message is what a dry run says.
const Message = "dry run (dryRun: true): images are neither copied nor rewritten. " +
	"The original chart's default was dryRun: true, which the original ignored; set dryRun: false to swap images"

// Interval is how often a running dry run says so again.
const Interval = time.Minute

// Warn logs Message now and every interval until ctx ends, so that a dry
// run left on by mistake is never silent.
func Warn(ctx context.Context, log *slog.Logger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		log.Warn(Message)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
