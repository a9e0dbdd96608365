package main

import (
	"cmp"
	"fmt"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
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
