package target

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/aws"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/gcp"
)

// Spec names a target: its kind and that kind's settings.
type Spec struct {
	Kind    string // aws, gcp, generic or local ("" is local)
	AWS     aws.Config
	GCP     gcp.Repository
	Generic GenericSpec
	Local   LocalSpec
}

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

// New opens the target s names. A gcp target checks its repository first.
func New(ctx context.Context, c Spec, opts ...Option) (Target, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	switch c.Kind {
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
		return nil, fmt.Errorf("unknown target type %q", c.Kind)
	}
}

// opened keeps a failed constructor's typed nil out of the interface.
func opened[T Target](t T, err error) (Target, error) {
	if err != nil {
		return nil, err
	}
	return t, nil
}

// CloudSources are the source registries whose credentials come from a
// cloud: ECR registries, and Artifact Registry locations.
type CloudSources struct {
	ECR []aws.Registry
	GAR []string // locations
	// AnyGAR serves every Artifact Registry host with Google's credentials,
	// as the original did with a gcp target.
	AnyGAR bool
}

// SourceKeychain authenticates pulls from the cloud source registries (and
// from any Artifact Registry host when there is one, or AnyGAR); other
// hosts resolve anonymously.
func SourceKeychain(ctx context.Context, c CloudSources, opts ...Option) (authn.Keychain, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	ecr, err := aws.NewKeychain(ctx, c.ECR, o.aws)
	if err != nil {
		return nil, err
	}
	return authn.NewMultiKeychain(ecr, gcp.NewKeychain(ctx, c.GAR, c.AnyGAR, o.gcp)), nil
}
