package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// BenchmarkCopyVsRead: a 2-platform image of 6 x 16 MiB layers between two
// local registries. Each run reads all its blobs straight from the source
// (the reference: what any copy must at least do), copies it into a fresh
// target repository, then copies it again (already there).
//
//	go test -run '^$' -bench CopyVsRead -benchtime 1x -count 5 ./internal/mirror/
func BenchmarkCopyVsRead(b *testing.B) {
	src, _, image := benchSetup(b)
	ctx := context.Background()
	skopeo, skopeoErr := exec.LookPath("skopeo")
	if skopeoErr != nil {
		b.Logf("no skopeo reference: %v (Debian's skopeo package; make bench installs it)", skopeoErr)
	}
	var read, cp, recopy, craneCp, skopeoCp time.Duration
	var bytes int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		t0 := time.Now()
		n, err := readAll(ctx, "http://"+src.Addr, "bench/app", "1", 4)
		if err != nil {
			b.Fatal(err)
		}
		read += time.Since(t0)
		bytes += n
		// Each copier gets a registry of its own: none can mount blobs another
		// already uploaded.
		eng := benchEngine(b, src.Addr, registryproc.Start(b, registryproc.Options{}).Addr, fmt.Sprintf("run%d", i))
		b.StartTimer()
		t0 = time.Now()
		res, err := eng.Copy(ctx, Request{Source: ref(b, image)})
		cp += time.Since(t0)
		if err != nil || res.Present {
			b.Fatalf("copy: %+v %v", res, err)
		}
		t0 = time.Now()
		res, err = eng.Copy(ctx, Request{Source: ref(b, image)})
		recopy += time.Since(t0)
		if err != nil || !res.Present {
			b.Fatalf("re-copy: %+v %v", res, err)
		}
		b.StopTimer()
		// The references: crane's copy (go-containerregistry's crane package, in
		// this process) and skopeo's (as a process), every platform.
		dst := registryproc.Start(b, registryproc.Options{}).Addr + "/bench/app:1"
		t0 = time.Now()
		if err := crane.Copy(image, dst, crane.Insecure, crane.WithContext(ctx)); err != nil {
			b.Fatalf("crane copy: %v", err)
		}
		craneCp += time.Since(t0)
		if skopeoErr == nil {
			dst := registryproc.Start(b, registryproc.Options{}).Addr + "/bench/app:1"
			t0 = time.Now()
			out, err := exec.CommandContext(ctx, skopeo, "copy", "--all", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
				"docker://"+image, "docker://"+dst).CombinedOutput()
			if err != nil {
				b.Fatalf("skopeo copy: %v\n%s", err, out)
			}
			skopeoCp += time.Since(t0)
		}
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(cp.Seconds()/n, "copy-s")
	b.ReportMetric(recopy.Seconds()/n, "recopy-s")
	b.ReportMetric(read.Seconds()/n, "read-s")
	b.ReportMetric(craneCp.Seconds()/n, "crane-copy-s")
	if skopeoErr == nil {
		b.ReportMetric(skopeoCp.Seconds()/n, "skopeo-copy-s")
	}
	b.ReportMetric(float64(bytes)/(1<<20)/read.Seconds(), "read-MiB/s")
	b.ReportMetric(float64(bytes)/(1<<20)/cp.Seconds(), "copy-MiB/s")
}

// readAll reads every manifest and blob of repo:tag (an index) from the
// registry at base, jobs blobs at a time, checking each digest, and
// returns the bytes read.
func readAll(ctx context.Context, base, repo, tag string, jobs int) (int64, error) {
	get := func(kind, ref string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/"+kind+"/"+ref, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "+
			"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s/%s: %s", kind, ref, resp.Status)
		}
		return resp, err
	}
	// read fetches one object, checks its digest (when known) and decodes
	// it into v (when given).
	read := func(kind, ref string, want *v1.Hash, v any) (int64, error) {
		resp, err := get(kind, ref)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		h := sha256.New()
		var body io.Reader = io.TeeReader(resp.Body, h)
		var n int64
		if v != nil {
			raw, err := io.ReadAll(body)
			if err != nil {
				return 0, err
			}
			n = int64(len(raw))
			if err := json.Unmarshal(raw, v); err != nil {
				return n, fmt.Errorf("%s %s: %w", kind, ref, err)
			}
		} else if n, err = io.Copy(io.Discard, body); err != nil {
			return n, err
		}
		if want != nil && hex.EncodeToString(h.Sum(nil)) != want.Hex {
			return n, fmt.Errorf("%s %s: digest mismatch", kind, ref)
		}
		return n, nil
	}
	var idx v1.IndexManifest
	total, err := read("manifests", tag, nil, &idx)
	if err != nil {
		return 0, err
	}
	var blobs []v1.Hash
	for _, d := range idx.Manifests {
		var m v1.Manifest
		n, err := read("manifests", d.Digest.String(), &d.Digest, &m)
		if err != nil {
			return 0, err
		}
		total += n
		blobs = append(blobs, m.Config.Digest)
		for _, l := range m.Layers {
			blobs = append(blobs, l.Digest)
		}
	}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for _, d := range blobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := read("blobs", d.String(), &d, nil)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	return total, firstErr
}

// BenchmarkCopyCommand: `k8s-image-swapper copy` of an image the target
// already has (3 x 1 MiB layers), as a process, as a CI job or an operator
// runs it; beside it the same binary's `version` (the start-up floor) and
// skopeo copying the same present image. requests counts what the copy
// asked both registries.
//
//	go test -run '^$' -bench CopyCommand -benchtime 1x -count 5 ./internal/mirror/
func BenchmarkCopyCommand(b *testing.B) {
	src := registryproc.Start(b, registryproc.Options{})
	dst := registryproc.Start(b, registryproc.Options{})
	image := src.Addr + "/bench/small:1"
	images.Push(b, image, images.Image(b, 1<<20, 3, "linux/amd64"))
	cfg := filepath.Join(b.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte("logLevel: error\nsource:\n  registries:\n    - type: generic\n      generic: {registry: \""+src.Addr+
		"\", insecure: true}\ntarget:\n  type: generic\n  generic:\n    registry: "+dst.Addr+"\n    insecure: true\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	bin := swapperbin.Path(b)
	run := func(args ...string) time.Duration {
		t0 := time.Now()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
		return time.Since(t0)
	}
	copyArgs := []string{bin, "copy", "--quiet", "--config", cfg, image}
	run(copyArgs...) // now it is present
	skopeo, skopeoErr := exec.LookPath("skopeo")
	skopeoArgs := []string{skopeo, "copy", "--all", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://" + image, "docker://" + dst.Addr + "/skopeo/small:1"}
	if skopeoErr == nil {
		run(skopeoArgs...)
	} else {
		b.Logf("no skopeo reference: %v (Debian's skopeo package; make bench installs it)", skopeoErr)
	}
	var cp, version, sk time.Duration
	var requests int
	b.ResetTimer()
	for range b.N {
		src.ResetLog()
		dst.ResetLog()
		cp += run(copyArgs...)
		requests += len(src.Requests()) + len(dst.Requests())
		version += run(bin, "version")
		if skopeoErr == nil {
			sk += run(skopeoArgs...)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(cp.Seconds()/n, "present-copy-s")
	b.ReportMetric(version.Seconds()/n, "version-s")
	b.ReportMetric(float64(requests)/n, "requests")
	if skopeoErr == nil {
		b.ReportMetric(sk.Seconds()/n, "skopeo-present-copy-s")
	}
}
