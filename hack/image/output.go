package main

import (
	"archive/tar"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// outputs are where build writes the index: any of a registry, an OCI layout folder and a
// tarball of that layout.
type outputs struct {
	push, layoutDir, tarFile, tag string
	insecure                      bool
}

func (o *outputs) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.push, "push", "", "push the index to this reference (host/repo:tag)")
	fs.BoolVar(&o.insecure, "insecure", false, "plain HTTP to the registry of -push (loopback and private addresses are plain HTTP anyway)")
	fs.StringVar(&o.layoutDir, "layout", "", "write an OCI image layout to this folder (replaced)")
	fs.StringVar(&o.tarFile, "tar", "", "write the OCI image layout as a tarball to this file")
	fs.StringVar(&o.tag, "tag", "latest", "the org.opencontainers.image.ref.name of the index in -layout and -tar")
}

func (o *outputs) write(ctx context.Context, idx v1.ImageIndex) error {
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	if o.push == "" && o.layoutDir == "" && o.tarFile == "" {
		return fmt.Errorf("nothing to do: give -push, -layout or -tar")
	}
	if o.push != "" {
		ref, err := parseRef(o.push, o.insecure)
		if err != nil {
			return err
		}
		if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		fmt.Printf("pushed %s@%s\n", ref.Context(), d)
	}
	dir := o.layoutDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "image-layout-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if o.layoutDir != "" || o.tarFile != "" {
		if err := writeLayout(dir, idx, o.tag); err != nil {
			return err
		}
		if o.layoutDir != "" {
			fmt.Printf("wrote OCI layout %s (%s)\n", o.layoutDir, d)
		}
	}
	if o.tarFile != "" {
		if err := tarFolder(dir, o.tarFile); err != nil {
			return err
		}
		fmt.Printf("wrote %s (%s)\n", o.tarFile, d)
	}
	return nil
}

func parseRef(s string, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", s, err)
	}
	return ref, nil
}

// writeLayout writes a fresh layout whose index.json points at idx (so its digest is kept).
func writeLayout(dir string, idx v1.ImageIndex, tag string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	return nil
}

// tarFolder tars dir in name order with fixed times and owners: the same layout, the same bytes.
func tarFolder(dir, file string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range names {
		if err := addToTar(tw, dir, p); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(file+".tmp", file)
}

func addToTar(tw *tar.Writer, dir, p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(dir, p)
	h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Mode: 0o644, Format: tar.FormatPAX}
	if st.IsDir() {
		h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		return tw.WriteHeader(h)
	}
	h.Typeflag, h.Size = tar.TypeReg, st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := io.Copy(tw, in); err != nil {
		return fmt.Errorf("tar %s: %w", p, err)
	}
	return nil
}
