package mirror

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
)

// filters tells whether source.platforms applies: to indexes, and not to
// a digest-pinned reference, whose digest must exist in the target.
func (e *Engine) filters(src reference.Named, mt types.MediaType) bool {
	return len(e.opts.Platforms) > 0 && imageref.Digest(src) == "" && mt.IsIndex()
}

func (e *Engine) matches(p *v1.Platform) bool {
	if p == nil {
		return false
	}
	for _, want := range e.opts.Platforms {
		if p.OS == want.OS && p.Architecture == want.Architecture &&
			(want.Variant == "" || p.Variant == want.Variant) {
			return true
		}
	}
	return false
}

// filterIndex keeps the wanted platforms, and entries with no platform
// (attestations and signatures point at the kept images).
func (e *Engine) filterIndex(idx v1.ImageIndex) (v1.ImageIndex, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	kept := 0
	for _, m := range im.Manifests {
		if e.matches(m.Platform) {
			kept++
		}
	}
	if kept == 0 {
		return nil, fmt.Errorf("none of its platforms is among source.platforms %s", platformsString(e.opts.Platforms))
	}
	return mutate.RemoveManifests(idx, func(d v1.Descriptor) bool {
		return d.Platform != nil && !e.matches(d.Platform) && d.Platform.OS != "unknown"
	}), nil
}

func platformsString(ps []v1.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
