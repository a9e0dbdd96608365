// Package mirrorpull pulls an image from a registry mirror the way
// containerd asks one, for tests and benchmarks of the node proxy and hub.
package mirrorpull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Pull asks mirror (HOST:PORT) for repo:tag of the source ns as containerd
// does (HEAD the tag, GET the manifest by digest, GET each blob), reads
// every body to the end and checks each blob against its digest.
func Pull(ctx context.Context, mirror, ns, repo, tag string) error {
	get := func(method, path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, "http://"+mirror+"/v2/"+repo+"/"+path+"?ns="+ns, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return resp, err
	}
	resp, err := get(http.MethodHead, "manifests/"+tag)
	if err != nil {
		return err
	}
	resp.Body.Close()
	d := resp.Header.Get("Docker-Content-Digest")
	if resp, err = get(http.MethodGet, "manifests/"+d); err != nil {
		return err
	}
	var m v1.Manifest
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	for _, l := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		resp, err := get(http.MethodGet, "blobs/"+l.Digest.String())
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("blob %s: %w", l.Digest, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.Digest.String() {
			return fmt.Errorf("blob %s came as %s", l.Digest, got)
		}
	}
	return nil
}
