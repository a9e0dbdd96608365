package target

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/aws"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/gcp"
)

// Option changes how New reaches cloud targets; production passes none.
type Option func(*options)

type options struct {
	aws aws.Options
	gcp gcp.Options
}

// WithAWS points the aws target at other endpoints (tests: the stand-ins).
func WithAWS(o aws.Options) Option { return func(n *options) { n.aws = o } }

// WithGCP points the gcp target at other endpoints (tests: the stand-ins).
func WithGCP(o gcp.Options) Option { return func(n *options) { n.gcp = o } }

// New opens the target the config names. A gcp target checks its
// repository first.
func New(ctx context.Context, c config.Target, opts ...Option) (Target, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	switch c.Type {
	case "generic":
		return opened(NewGeneric(c.Generic))
	case "local", "":
		return opened(NewLocal(ctx, c.Local))
	case "aws":
		if o.aws.Transport == nil {
			o.aws.Transport = NewTransport(o.aws.Insecure)
		}
		return opened(aws.New(ctx, c.AWS, o.aws))
	case "gcp":
		if o.gcp.Transport == nil {
			o.gcp.Transport = NewTransport(o.gcp.Insecure)
		}
		return opened(gcp.New(ctx, c.GCP, o.gcp))
	default:
		return nil, fmt.Errorf("unknown target type %q", c.Type)
	}
}

// opened keeps a failed constructor's typed nil out of the interface.
func opened[T Target](t T, err error) (Target, error) {
	if err != nil {
		return nil, err
	}
	return t, nil
}

// SourceKeychain authenticates pulls from the cloud registries of
// source.registries (type aws and gcp), and from any Artifact Registry host
// when the target or a source is gcp; other hosts resolve anonymously.
func SourceKeychain(ctx context.Context, regs []config.Registry, tgt config.Target, opts ...Option) (authn.Keychain, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	ecr, err := aws.NewKeychain(ctx, regs, o.aws)
	if err != nil {
		return nil, err
	}
	return authn.NewMultiKeychain(ecr, gcp.NewKeychain(ctx, regs, tgt.Type == "gcp", o.gcp)), nil
}
