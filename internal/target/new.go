package target

import (
	"context"
	"fmt"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
)

// New opens the target the config names.
func New(ctx context.Context, c config.Target) (Target, error) {
	switch c.Type {
	case "generic":
		return NewGeneric(c.Generic)
	case "local", "":
		return NewLocal(ctx, c.Local)
	case "aws", "gcp":
		return nil, fmt.Errorf("target type %q is not available in this build yet", c.Type)
	default:
		return nil, fmt.Errorf("unknown target type %q", c.Type)
	}
}
