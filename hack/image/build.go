package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// meta is what the labels and annotations say about the build.
type meta struct {
	source, version, revision string
	created                   time.Time
}

func (m meta) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":      m.source,
		"org.opencontainers.image.url":         m.source,
		"org.opencontainers.image.version":     m.version,
		"org.opencontainers.image.revision":    m.revision,
		"org.opencontainers.image.created":     m.created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.title":       "k8s-image-swapper",
		"org.opencontainers.image.description": "Mirror the images a Kubernetes cluster uses into a registry it owns: mutating webhook and node proxy",
	}
}

// platformBinary is one -binary os/arch[/variant]=path, and the
// -proxy-binary of the same platform.
type platformBinary struct {
	platform  v1.Platform
	path      string
	proxyPath string
}

type binaries []platformBinary

func (b *binaries) String() string { return fmt.Sprint(*b) }
func (b *binaries) Set(s string) error {
	p, file, ok := strings.Cut(s, "=")
	if !ok || file == "" {
		return fmt.Errorf("want os/arch=path, got %q", s)
	}
	pl, err := v1.ParsePlatform(p)
	if err != nil {
		return err
	}
	if pl.Architecture == "arm64" && pl.Variant == "" {
		pl.Variant = "v8"
	}
	*b = append(*b, platformBinary{platform: *pl, path: file})
	return nil
}

// pair gives each binary the proxy binary of its platform: every platform
// needs both, and each proxy binary a binary.
func (b binaries) pair(proxies binaries) error {
	for i := range b {
		for _, p := range proxies {
			if p.platform.Equals(b[i].platform) {
				b[i].proxyPath = p.path
			}
		}
		if b[i].proxyPath == "" {
			return fmt.Errorf("no -proxy-binary for %s", b[i].platform)
		}
	}
	for _, p := range proxies {
		if !slices.ContainsFunc(b, func(x platformBinary) bool { return x.platform.Equals(p.platform) }) {
			return fmt.Errorf("-proxy-binary for %s, which has no -binary", p.platform)
		}
	}
	return nil
}

func runBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	var (
		bins    binaries
		proxies binaries
		m       meta
		created string
		caFile  string
		out     outputs
	)
	fs.Var(&bins, "binary", "os/arch=PATH of a static binary (repeat per platform)")
	fs.Var(&proxies, "proxy-binary", "os/arch=PATH of the platform's static node proxy binary, k8s-image-swapper-proxy (repeat per platform)")
	fs.StringVar(&created, "created", "", "build time, RFC 3339 or Unix seconds: the commit time")
	fs.StringVar(&m.version, "version", "dev", "org.opencontainers.image.version")
	fs.StringVar(&m.revision, "revision", "unknown", "org.opencontainers.image.revision")
	fs.StringVar(&m.source, "source", "https://github.com/k8s-image-swapper/k8s-image-swapper", "org.opencontainers.image.source")
	fs.StringVar(&caFile, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to ship")
	out.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(bins) == 0 {
		return fmt.Errorf("no -binary given")
	}
	if err := bins.pair(proxies); err != nil {
		return err
	}
	t, err := parseTime(created)
	if err != nil {
		return err
	}
	m.created = t
	ca, err := readFile(caFile)
	if err != nil {
		return err
	}
	idx, err := buildIndex(bins, ca, m)
	if err != nil {
		return err
	}
	return out.write(ctx, idx)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("-created is required (the commit time, for a reproducible digest)")
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	var sec int64
	if _, err := fmt.Sscanf(s, "%d", &sec); err != nil {
		return time.Time{}, fmt.Errorf("-created %q: want RFC 3339 or Unix seconds", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// buildIndex is the OCI index of one image per platform.
func buildIndex(bins binaries, ca []byte, m meta) (v1.ImageIndex, error) {
	base, err := baseLayer(ca, m.created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, b := range bins {
		img, err := buildImage(base, b, m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.platform, err)
		}
		pl := b.platform
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pl}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, m.labels()).(v1.ImageIndex), nil
}

func buildImage(base v1.Layer, b platformBinary, m meta) (v1.Image, error) {
	bin, err := readFile(b.path)
	if err != nil {
		return nil, err
	}
	proxyBin, err := readFile(b.proxyPath)
	if err != nil {
		return nil, err
	}
	binLayer, err := binaryLayer(bin, proxyBin, m.created)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: m.created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "hack/image: CA certificates, users, /tmp", Comment: "base"}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "hack/image: " + binaryPath + ", " + proxyBinaryPath, Comment: m.version}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = b.platform.OS, b.platform.Architecture, b.platform.Variant, ""
	cf.Config = v1.Config{
		Entrypoint: []string{binaryPath},
		User:       fmt.Sprintf("%d:%d", nonrootID, nonrootID),
		WorkingDir: "/tmp",
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"SSL_CERT_FILE=" + caPath,
			"HOME=/tmp",
		},
		Labels: m.labels(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, m.labels()).(v1.Image), nil
}
