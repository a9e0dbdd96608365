package mirror

import (
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
)

// blobHomes remembers a target repository that holds each blob copied, so
// the next image sharing a layer (another image on the same base) gets it
// by a cross-repository mount instead of an upload.
type blobHomes struct {
	repos *ttlcache.Cache[v1.Hash, name.Repository]
}

// maxBlobHomes bounds what is remembered; a blob forgotten costs an upload.
const maxBlobHomes = 50_000

func (b *blobHomes) get(h v1.Hash) (name.Repository, bool) { return b.repos.Get(h) }

// remember records img's layers as held by repo.
func (b *blobHomes) remember(repo name.Repository, img v1.Image) {
	layers, err := img.Layers()
	if err != nil {
		return
	}
	for _, l := range layers {
		if h, err := l.Digest(); err == nil {
			b.repos.Set(h, repo, 0)
		}
	}
}

// mountImage offers each layer the target already holds elsewhere as a
// mountable layer; go-containerregistry then asks the registry to mount it.
// A layer it uploads is read with open when set (Options.SourceBlobs).
type mountImage struct {
	v1.Image
	homes *blobHomes
	repo  name.Repository
	open  opener
}

// opener opens a source layer with a reader that checks its bytes itself.
type opener func(d v1.Hash) (io.ReadCloser, error)

func (m mountImage) Layers() ([]v1.Layer, error) {
	layers, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	mf, err := m.Image.Manifest()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(layers))
	for i, l := range layers {
		out[i] = l
		h, err := l.Digest()
		if err != nil {
			continue
		}
		if i < len(mf.Layers) && mf.Layers[i].Digest == h {
			l = described{Layer: l, desc: mf.Layers[i], open: m.open}
			out[i] = l
		}
		if home, ok := m.homes.get(h); ok && home.String() != m.repo.String() {
			out[i] = &remote.MountableLayer{Layer: l, Reference: home.Digest(h.String())}
		}
	}
	return out, nil
}

// described answers a layer's size and media type from the manifest,
// parsed once: a layer of a remote image parses the whole manifest again
// for each (go-containerregistry asks both of every layer it writes), which
// made a copy of n layers parse it about 3n times.
type described struct {
	v1.Layer
	desc v1.Descriptor
	open opener
}

// Compressed reads through open when it can: go-containerregistry hashes
// every layer it reads from a registry, which for a blob the node proxy's
// spool already checked was two thirds of the proxy's CPU for a copy.
func (d described) Compressed() (io.ReadCloser, error) {
	if d.open != nil {
		if rc, err := d.open(d.desc.Digest); err == nil {
			return rc, nil
		}
	}
	return d.Layer.Compressed()
}

func (d described) Size() (int64, error)                { return d.desc.Size, nil }
func (d described) MediaType() (types.MediaType, error) { return d.desc.MediaType, nil }
func (d described) Descriptor() (*v1.Descriptor, error) { return &d.desc, nil }

// mountIndex does the same for each image of an index.
type mountIndex struct {
	index
	homes *blobHomes
	repo  name.Repository
	open  opener
}

// index is v1.ImageIndex under a name that does not clash with its method.
type index = v1.ImageIndex

func (m mountIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := m.index.Image(h)
	if err != nil {
		return nil, err
	}
	return mountImage{Image: img, homes: m.homes, repo: m.repo, open: m.open}, nil
}

func (m mountIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := m.index.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return mountIndex{index: idx, homes: m.homes, repo: m.repo, open: m.open}, nil
}

// rememberIndex records the layers of every image of idx.
func (b *blobHomes) rememberIndex(repo name.Repository, idx v1.ImageIndex) {
	im, err := idx.IndexManifest()
	if err != nil {
		return
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsImage():
			if img, err := idx.Image(d.Digest); err == nil {
				b.remember(repo, img)
			}
		case d.MediaType.IsIndex():
			if child, err := idx.ImageIndex(d.Digest); err == nil {
				b.rememberIndex(repo, child)
			}
		}
	}
}
