package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's file system.
const (
	binaryPath = "/usr/local/bin/k8s-image-swapper"
	// The node proxy alone (go build -tags nodeproxy): what the chart's proxy DaemonSet runs.
	proxyBinaryPath = "/usr/local/bin/k8s-image-swapper-proxy"
	caPath          = "/etc/ssl/certs/ca-certificates.crt"
	nonrootID       = 65532
)

// file is one entry of a layer: a regular file, or a folder when body is nil.
type file struct {
	name string // absolute path in the image
	mode int64
	body []byte
}

// baseLayer is shared by every platform: CA certificates, the users, and /tmp writable by all.
func baseLayer(caCerts []byte, created time.Time) (v1.Layer, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/tmp:/sbin/nologin\n", nonrootID, nonrootID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonrootID)
	return layer(created, []file{
		{name: caPath, mode: 0o644, body: caCerts},
		{name: "/etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "/etc/group", mode: 0o644, body: []byte(group)},
		{name: "/tmp", mode: 0o1777},
	})
}

// binaryLayer holds the platform's static binaries.
func binaryLayer(bin, proxyBin []byte, created time.Time) (v1.Layer, error) {
	return layer(created, []file{{name: binaryPath, mode: 0o755, body: bin}, {name: proxyBinaryPath, mode: 0o755, body: proxyBin}})
}

// layer writes files, and every folder above them, into a tar in name order, owned by root
// and dated created; the same files give the same bytes, and ggcr's gzip the same digest.
func layer(created time.Time, files []file) (v1.Layer, error) {
	entries := map[string]file{}
	for _, f := range files {
		entries[f.name] = f
		for d := path.Dir(f.name); d != "/"; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = file{name: d, mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := entries[n]
		h := &tar.Header{Name: n[1:], Mode: f.mode, ModTime: created, Format: tar.FormatPAX}
		if f.body == nil {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", n, err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, fmt.Errorf("tar %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

func readFile(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}
