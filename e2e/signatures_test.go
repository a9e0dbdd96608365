//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// TestSignaturesFollowTheImage: an image signed and attested with cosign
// (a key pair, offline: no Rekor, no Fulcio), with an OCI referrer beside,
// is mirrored by the webhook behind a real kube-apiserver; cosign then
// verifies the target reference the pod got exactly as it verifies the
// source. Both registries are distribution 2.8, without the referrers API:
// referrers travel through the fallback tag sha256-<hex>.
func TestSignaturesFollowTheImage(t *testing.T) {
	cosign := kubeTool(t, "cosign")
	kube := startKube(t)
	bin := swapperbin.Path(t)
	src := registryproc.Start(t, registryproc.Options{})
	dst := registryproc.Start(t, registryproc.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	image := src.Addr + "/team/signed:v1"
	digest := images.Push(t, image, images.Image(t, 4096, 1, "linux/amd64"))
	pinned := src.Addr + "/team/signed@" + digest.String()
	target := dst.Addr + "/" + strings.Replace(image, ":", "_", 1)

	// Sign as a publisher would: cosign's tag scheme (.sig, .att) and its
	// newer bundle format, an OCI referrer; and an SBOM referrer of our own.
	keys := t.TempDir()
	cs := cosignRunner{t: t, bin: cosign, dir: keys}
	cs.run("generate-key-pair")
	offline := []string{"--key", "cosign.key", "--use-signing-config=false", "--tlog-upload=false",
		"--allow-http-registry", "--allow-insecure-registry", "--yes"}
	cs.run(append(append([]string{"sign"}, offline...), "--new-bundle-format=false", pinned)...)
	cs.run(append(append([]string{"sign"}, offline...), pinned)...)
	sbom := filepath.Join(keys, "sbom.spdx.json")
	writeKubeFile(t, sbom, []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"signed",`+
		`"dataLicense":"CC0-1.0","documentNamespace":"https://example.invalid/signed",`+
		`"creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: e2e"]},"packages":[]}`))
	// spdxjson: cosign v3.1.3 verifies no attestation of --type spdx (its
	// string predicate), not even at the source.
	cs.run(append(append([]string{"attest"}, offline...), "--new-bundle-format=false",
		"--type", "spdxjson", "--predicate", sbom, pinned)...)
	referrer := pushReferrer(t, src.Addr+"/team/signed", digest)

	for _, tag := range []string{".sig", ".att"} {
		if _, err := remote.Head(mustRef(t, src.Addr+"/team/signed:sha256-"+digest.Hex+tag)); err != nil {
			t.Fatalf("cosign left no %s tag at the source: %v", tag, err)
		}
	}
	verify := func(ref string) {
		t.Helper()
		v := []string{"--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-http-registry", "--allow-insecure-registry"}
		cs.run(append(append([]string{"verify"}, v...), ref)...)
		cs.run(append(append([]string{"verify"}, v...), "--new-bundle-format=false", ref)...)
		cs.run(append(append([]string{"verify-attestation"}, v...), "--new-bundle-format=false", "--type", "spdxjson", ref)...)
	}
	verify(image) // the test's own premise

	// The webhook copies on the first pod (delayed) and swaps the next one.
	wh, ca := startConfiguredWebhook(t, bin, kube.Kubeconfig, fmt.Sprintf(`logLevel: debug
imageSwapPolicy: exists
imageCopyPolicy: delayed
source:
  registries:
    - type: generic
      generic: {registry: "%s", insecure: true}
target:
  type: generic
  generic: {registry: "%s", insecure: true}
`, src.Addr, dst.Addr))
	c := kube.Client
	createNamespace(ctx, t, c, "apps")
	registerWebhook(ctx, t, c, wh.base+"/webhook", ca.CertPEM)
	// Pods until one is swapped: the API server calls a new webhook after
	// a moment, the first pod it sees starts the copy (a dry run would
	// not) and keeps its image, and a pod after the copy gets the mirror.
	got := ""
	for i := 0; got != target; i++ {
		got = createPod(ctx, t, c, "apps", fmt.Sprintf("signed-%d", i), image).Spec.Containers[0].Image
		if got != target && got != image {
			t.Fatalf("pod image %q, want %q or the original", got, target)
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		inRegistry(wctx, t, target, digest)
		wcancel()
	}

	// Signatures follow the image, after it: wait for the last of them.
	tgtRepo := dst.Addr + "/" + strings.Replace(src.Addr, ":", "_", 1) + "/team/signed"
	waitReferrers(ctx, t, tgtRepo, digest, referrer, 2)
	for _, tag := range []string{".sig", ".att"} {
		waitTag(ctx, t, tgtRepo+":sha256-"+digest.Hex+tag)
	}
	verify(got)

	m := wh.get(t, "/metrics")
	if n := metricValue(t, m, `k8s_image_swapper_referrer_copies_total{result="copied"}`); n < 4 {
		t.Errorf("referrer_copies_total{result=copied} is %v, want at least 4 (.sig, .att, cosign's bundle, the SBOM)", n)
	}
	if n := metricValue(t, m, `k8s_image_swapper_referrer_copies_total{result="failed"}`); n != 0 {
		t.Errorf("referrer_copies_total{result=failed} is %v", n)
	}
}

// cosignRunner runs cosign offline in dir, with the key pair's password.
type cosignRunner struct {
	t   *testing.T
	bin string
	dir string
}

func (c cosignRunner) run(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.dir
	// HOME: cosign's TUF cache stays in the test's folder.
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=e2e-password", "HOME="+c.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pushReferrer pushes an SBOM-like artifact whose subject is repo@subject.
func pushReferrer(t *testing.T, repo string, subject v1.Hash) v1.Hash {
	t.Helper()
	desc, err := remote.Head(mustRef(t, repo+"@"+subject.String()))
	if err != nil {
		t.Fatal(err)
	}
	art := mutate.ConfigMediaType(images.Image(t, 128, 1, ""), "application/vnd.example.sbom+json")
	img := mutate.Subject(art, *desc).(v1.Image)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return images.Push(t, repo+"@"+d.String(), img)
}

// waitReferrers waits until repo lists at least n referrers of subject,
// want among them.
func waitReferrers(ctx context.Context, t *testing.T, repo string, subject, want v1.Hash, n int) {
	t.Helper()
	d, err := name.NewDigest(repo+"@"+subject.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var listed []v1.Descriptor
	for {
		if idx, err := remote.Referrers(d); err == nil {
			if im, err := idx.IndexManifest(); err == nil {
				listed = im.Manifests
				found := false
				for _, m := range listed {
					found = found || m.Digest == want
				}
				if found && len(listed) >= n {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s lists referrers %v, want %s among %d", d, listed, want, n)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitTag(ctx context.Context, t *testing.T, ref string) {
	t.Helper()
	for {
		if _, err := remote.Head(mustRef(t, ref)); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never appeared", ref)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// metricValue reads one series of a Prometheus text exposition (0 if absent).
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
