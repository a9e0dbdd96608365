//go:build !nodeproxy

package main

import (
	"cmp"
	"fmt"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook"
)

// summary is the one-line description `config validate` prints and the
// webhook logs at start: what the components will do with c.
func summary(c *config.Config) string {
	return fmt.Sprintf("target=%s swap=%s copy=%s deadline=%s sources=%d filters=%d platforms=%d dryRun=%t",
		targetName(targetSpec(c)), c.ImageSwapPolicy, c.ImageCopyPolicy,
		cmp.Or(c.ImageCopyDeadline.D(), webhook.DefaultCopyDeadline),
		len(c.Source.Registries), len(c.Source.Filters), len(c.Source.Platforms), c.DryRun)
}
