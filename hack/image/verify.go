package main

import (
	"archive/tar"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

// runVerify checks a pushed index: every -platform is there, each image runs as nonroot with
// the binary as entrypoint and holds the node proxy binary, and the labels name the version
// and revision.
func runVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var (
		platforms         list
		insecure          bool
		version, revision string
	)
	fs.Var(&platforms, "platform", "a platform the index must list (repeat)")
	fs.BoolVar(&insecure, "insecure", false, "plain HTTP")
	fs.StringVar(&version, "version", "", "expected org.opencontainers.image.version")
	fs.StringVar(&revision, "revision", "", "expected org.opencontainers.image.revision")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("verify takes one reference")
	}
	ref, err := parseRef(fs.Arg(0), insecure)
	if err != nil {
		return err
	}
	idx, err := remote.Index(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	var seen []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			return fmt.Errorf("%s: manifest %s has no platform", ref, d.Digest)
		}
		seen = append(seen, d.Platform.OS+"/"+d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		c := cf.Config
		where := fmt.Sprintf("%s %s", ref, d.Platform)
		if c.User != fmt.Sprintf("%d:%d", nonrootID, nonrootID) {
			return fmt.Errorf("%s: user %q, want %d:%d", where, c.User, nonrootID, nonrootID)
		}
		if !slices.Equal(c.Entrypoint, []string{binaryPath}) {
			return fmt.Errorf("%s: entrypoint %v", where, c.Entrypoint)
		}
		if err := hasExecutables(img, binaryPath, proxyBinaryPath); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for k, want := range map[string]string{"org.opencontainers.image.version": version, "org.opencontainers.image.revision": revision, "org.opencontainers.image.source": "", "org.opencontainers.image.created": ""} {
			got := c.Labels[k]
			if got == "" || (want != "" && got != want) {
				return fmt.Errorf("%s: label %s = %q, want %q", where, k, got, want)
			}
		}
		if cf.Created.Format("2006-01-02T15:04:05Z07:00") != c.Labels["org.opencontainers.image.created"] {
			return fmt.Errorf("%s: created %s but label says %s", where, cf.Created, c.Labels["org.opencontainers.image.created"])
		}
	}
	for _, p := range platforms {
		if !slices.Contains(seen, p) {
			return fmt.Errorf("%s lists %v, not %s", ref, seen, p)
		}
	}
	d, _ := idx.Digest()
	fmt.Printf("%s@%s: %s, nonroot, labelled %s %s\n", ref.Context(), d, strings.Join(seen, " "), version, revision)
	return nil
}

// imageFiles are the headers of img's files, by path without the leading slash.
func imageFiles(img v1.Image) (map[string]*tar.Header, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read layers: %w", err)
		}
		files[strings.Trim(h.Name, "/")] = h
	}
}

// hasExecutables checks that img's files include each of paths, executable.
func hasExecutables(img v1.Image, paths ...string) error {
	files, err := imageFiles(img)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if h := files[strings.TrimPrefix(p, "/")]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
			return fmt.Errorf("no executable %s", p)
		}
	}
	return nil
}
