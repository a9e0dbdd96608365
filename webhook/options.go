package webhook

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/filter"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
)

// DefaultCopyDeadline is imageCopyDeadline's default.
const DefaultCopyDeadline = 8 * time.Second

// skipKey is the label or annotation by which a pod opts out: with the value
// "true" none of its images is touched (operators that reconcile images).
const skipKey = "k8s-image-swapper.io/skip"

// Mirror is what the webhook needs of the copy engine (*mirror.Engine).
type Mirror interface {
	Exists(ctx context.Context, src reference.Named) (bool, error)
	Mirror(ctx context.Context, how policy.Copy, deadline time.Duration, req mirror.Request) error
}

// Access tells who may read a source image (*mirror.Access).
type Access interface {
	// Public tells whether src's source serves it without credentials.
	Public(ctx context.Context, src reference.Named) (bool, error)
	// Readable tells whether kc's credentials read src at its source.
	Readable(ctx context.Context, src reference.Named, kc authn.Keychain) (bool, error)
}

// Keychains gives the registry credentials of a pod (*pullsecrets.Keychains).
type Keychains interface {
	Keychain(namespace string, secrets []string, serviceAccount string) authn.Keychain
}

// Options configure the admission handler.
type Options struct {
	Mirror Mirror
	// Mapper names target references (the engine's target's Mapper).
	Mapper       imageref.Mapper
	SwapPolicy   policy.Swap   // default exists
	CopyPolicy   policy.Copy   // default delayed
	CopyDeadline time.Duration // bound on an immediate or force copy (default DefaultCopyDeadline)
	// DryRun logs and counts decisions but copies and patches nothing.
	DryRun bool
	// TagTTL bounds how often the tag of a container with imagePullPolicy
	// Always is resolved at the source again (and re-copied when it moved);
	// default policy.DefaultTagTTL.
	TagTTL time.Duration
	Filter *filter.Filter
	// PullSecrets, when set, adds each pod's pull secrets to its copies.
	PullSecrets Keychains
	// PrivateImages decides which pods get the copy of an image its source
	// serves only with credentials (default policy.PrivateImagesCheck: pods
	// whose own pull secrets read it there, asked through Access).
	PrivateImages policy.PrivateImages
	Access        Access
	Logger        *slog.Logger
}

// check fills what o leaves zero with the webhook's defaults, all here,
// and refuses what cannot work.
func (o *Options) check() error {
	if o.Mirror == nil {
		return fmt.Errorf("webhook: no copy engine")
	}
	if o.Mapper.Host == "" {
		return fmt.Errorf("webhook: no target registry")
	}
	var err error
	if o.SwapPolicy, err = policy.ParseSwap(string(o.SwapPolicy)); err != nil {
		return fmt.Errorf("webhook: image swap policy: %w", err)
	}
	if o.CopyPolicy, err = policy.ParseCopy(string(o.CopyPolicy)); err != nil {
		return fmt.Errorf("webhook: image copy policy: %w", err)
	}
	if o.PrivateImages, err = policy.ParsePrivateImages(string(o.PrivateImages)); err != nil {
		return fmt.Errorf("webhook: private images: %w", err)
	}
	if o.PrivateImages == policy.PrivateImagesCheck && o.Access == nil {
		return fmt.Errorf("webhook: private images %s: no way to ask sources who may read an image", o.PrivateImages)
	}
	o.CopyDeadline = cmp.Or(o.CopyDeadline, DefaultCopyDeadline)
	o.TagTTL = cmp.Or(o.TagTTL, policy.DefaultTagTTL)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	return nil
}
