//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// The fault matrix: each test breaks one component for real (a process
// killed, a port that accepts and never answers, a relay that corrupts or
// throttles) and asserts that no pull fails and no data is lost or corrupt.

// TestFaultTargetDown: with the target refusing connections, or accepting
// them and never answering, pulls through the proxy are served by the source.
func TestFaultTargetDown(t *testing.T) {
	for _, mode := range []string{"refused", "hung"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			src := registryproc.Start(t, registryproc.Options{})
			tgt := registryproc.Start(t, registryproc.Options{})
			px := startProxyProcess(t, faultProxyConfig(tgt.Addr, src.Addr, 2*time.Second))
			node := faultNode(ctx, t, px.Addr, src.Addr, tgt.Addr)
			ref := src.Addr + "/e2e/td:v1"
			want := images.Push(t, ref, images.Image(t, 256<<10, 2, "linux/"+runtime.GOARCH))

			tgt.Stop()
			var hung *hungServer
			if mode == "hung" {
				hung = startHung(t, tgt.Addr)
			}
			src.ResetLog()
			if err := node.Pull(ctx, "tag", ref); err != nil {
				t.Fatalf("pull with the target %s: %v\nproxy log:\n%s", mode, err, px.Log())
			}
			if d, err := node.ImageDigest(ctx, "tag", ref); err != nil || d != want.String() {
				t.Fatalf("pulled %s (%v), want %s", d, err, want)
			}
			if err := node.Pull(ctx, "digest", src.Addr+"/e2e/td@"+want.String()); err != nil {
				t.Fatalf("pull by digest with the target %s: %v", mode, err)
			}
			if n := src.Count(http.MethodGet, "/v2/e2e/td/blobs/"); n < 3 {
				t.Fatalf("the source served %d blob GETs, want the whole image", n)
			}
			if hung != nil && hung.Accepted() == 0 {
				t.Fatal("nothing connected to the hung target: the case did not test a hung target")
			}
			// Once the target hung, the proxy's breaker skips it: not every
			// manifest and blob request waits out the upstream timeout.
			if hung != nil && hung.Accepted() > 6 {
				t.Fatalf("the hung target got %d connections: the proxy kept waiting on it", hung.Accepted())
			}
			if got := px.metric(t, "k8s_image_swapper_proxy_requests_total", map[string]string{"served_from": "source"}); got < 3 {
				t.Fatalf("the proxy served %v requests from the source, want the pulls through it", got)
			}
		})
	}
}

// TestFaultSourceDown: with the source refusing connections, or hung, an
// image the target holds pulls by tag and by digest from the target; a hung
// source is given up on after proxy.upstreamTimeout.
func TestFaultSourceDown(t *testing.T) {
	for _, mode := range []string{"refused", "hung"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			src := registryproc.Start(t, registryproc.Options{})
			tgt := registryproc.Start(t, registryproc.Options{})
			px := startProxyProcess(t, faultProxyConfig(tgt.Addr, src.Addr, time.Second))
			node := faultNode(ctx, t, px.Addr, src.Addr, tgt.Addr)
			img := images.Image(t, 256<<10, 2, "linux/"+runtime.GOARCH)
			ref := src.Addr + "/e2e/sd:v1"
			want := images.Push(t, ref, img)
			images.Push(t, tgt.Addr+"/"+mirrorRepo(src.Addr, "e2e/sd")+":v1", img)
			// A first pull while the source is up: the proxy has a transport
			// and a tag answer for it, as on a node that has been running.
			if err := node.Pull(ctx, "warm", ref); err != nil {
				t.Fatal(err)
			}

			src.Stop()
			var hung *hungServer
			if mode == "hung" {
				hung = startHung(t, src.Addr)
			}
			time.Sleep(1100 * time.Millisecond) // past tagTTL: the proxy must ask the source again
			before := px.metric(t, "k8s_image_swapper_proxy_requests_total", map[string]string{"served_from": "target"})
			if err := node.Pull(ctx, "tag", ref); err != nil {
				t.Fatalf("pull by tag with the source %s: %v\nproxy log:\n%s", mode, err, px.Log())
			}
			if d, err := node.ImageDigest(ctx, "tag", ref); err != nil || d != want.String() {
				t.Fatalf("pulled %s (%v), want %s", d, err, want)
			}
			byDigest := src.Addr + "/e2e/sd@" + want.String()
			if err := node.Pull(ctx, "digest", byDigest); err != nil {
				t.Fatalf("pull by digest with the source %s: %v", mode, err)
			}
			if got := px.metric(t, "k8s_image_swapper_proxy_requests_total", map[string]string{"served_from": "target"}) - before; got < 6 {
				t.Fatalf("the proxy served %v requests from the target for two pulls", got)
			}
			if hung != nil {
				if hung.Accepted() == 0 {
					t.Fatal("nothing connected to the hung source: the case did not test a hung source")
				}
				// The tag check gave up after upstreamTimeout (1s), not the
				// proxy's longer fixed wait, and the target's copy was served.
				found := false
				for _, line := range strings.Split(px.Log(), "\n") {
					if strings.Contains(line, "serving the target's copy") && strings.Contains(line, "upstream timed out") {
						found = true
					}
				}
				if !found {
					t.Fatalf("no log line shows the tag check timing out and the target's copy served:\n%s", px.Log())
				}
			}
		})
	}
}

// TestFaultProxyKilledMidBlob kills the proxy (SIGKILL) while containerd
// pulls a 256 MiB blob through it. containerd (1.6.20 here) re-opens a blob
// whose transfer broke at the offset it had reached, trying its hosts in
// order again: the proxy is refused, so the origin serves the rest with a
// Range request and the pull in flight completes.
func TestFaultProxyKilledMidBlob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	// The origin as containerd sees it: a relay that paces blob bodies, so
	// the kill lands in the middle of the big blob.
	origin := startFaultRelay(t, src.Addr, "")
	px := startProxyProcess(t, faultProxyConfig(tgt.Addr, origin.Addr, 10*time.Second))
	node := faultNode(ctx, t, px.Addr, origin.Addr, tgt.Addr)
	img := images.Image(t, 256<<20, 1, "linux/"+runtime.GOARCH)
	want := images.Push(t, src.Addr+"/e2e/big:v1", img)
	ref := origin.Addr + "/e2e/big:v1"
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	big, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}

	origin.rate.Store(32 << 20)
	pulled := make(chan error, 1)
	go func() { pulled <- node.Pull(ctx, "big", ref) }()
	waitFor(ctx, t, "64 MiB of the big blob on its way", func() bool { return origin.blobSent.Load() >= 64<<20 })
	killedAt := time.Now()
	px.Stop()
	origin.rate.Store(0)
	if err := <-pulled; err != nil {
		t.Fatalf("the pull in flight when the proxy died failed: %v", err)
	}
	if d, err := node.ImageDigest(ctx, "big", ref); err != nil || d != want.String() {
		t.Fatalf("pulled %s (%v), want %s", d, err, want)
	}
	var after []string
	resumed := false
	for _, r := range origin.Requests() {
		if r.Start.After(killedAt) && r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/blobs/"+big.String()) {
			after = append(after, fmt.Sprintf("Range=%q -> %d", r.Range, r.Status))
			resumed = resumed || r.Status == http.StatusPartialContent && strings.HasPrefix(r.Range, "bytes=") && !strings.HasPrefix(r.Range, "bytes=0-")
		}
	}
	t.Logf("origin GETs of the big blob after the kill: %v", after)
	if !resumed {
		t.Fatal("containerd did not resume the big blob from the origin where the proxy left off")
	}
}

// TestFaultCorruptSource: a source whose blob bodies have a flipped byte.
// The pull fails, the target never stores the image or the bad blob, and
// once the source is fixed the next pull succeeds.
func TestFaultCorruptSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	origin := startFaultRelay(t, src.Addr, "")
	px := startProxyProcess(t, faultProxyConfig(tgt.Addr, origin.Addr, 10*time.Second))
	node := faultNode(ctx, t, px.Addr, origin.Addr, tgt.Addr)
	img := images.Image(t, 1<<20, 2, "linux/"+runtime.GOARCH)
	want := images.Push(t, src.Addr+"/e2e/bad:v1", img)
	ref := origin.Addr + "/e2e/bad:v1"
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	repo := mirrorRepo(origin.Addr, "e2e/bad")

	origin.corrupt.Store(true)
	if err := node.Pull(ctx, "bad", ref); err == nil {
		t.Fatal("a pull of corrupt blobs succeeded")
	}
	// The copy the pull triggered reads the same corrupt bytes; wait until
	// it has given up before looking at the target.
	waitFor(ctx, t, "the triggered copy to fail", func() bool {
		return px.metric(t, "k8s_image_swapper_copies_total", map[string]string{"result": "failed"}) > 0
	})
	if px.metric(t, "k8s_image_swapper_proxy_digest_mismatches_total", nil) == 0 {
		t.Error("the proxy counted no digest mismatch")
	}
	if code := registryStatus(t, tgt.Addr, repo, "manifests", "v1"); code != http.StatusNotFound {
		t.Fatalf("the target answers %d for the corrupt image's tag, want 404", code)
	}
	if code := registryStatus(t, tgt.Addr, repo, "manifests", want.String()); code != http.StatusNotFound {
		t.Fatalf("the target answers %d for the corrupt image's digest, want 404", code)
	}
	for _, d := range append(layerDigests(m), m.Config.Digest) {
		if code := registryStatus(t, tgt.Addr, repo, "blobs", d.String()); code != http.StatusNotFound {
			t.Fatalf("the target answers %d for blob %s it could only have got corrupt, want 404", code, d)
		}
	}
	registryIntact(t, tgt.Addr)

	origin.corrupt.Store(false)
	if err := node.Pull(ctx, "good", ref); err != nil {
		t.Fatalf("pull once the source is fixed: %v\nproxy log:\n%s", err, px.Log())
	}
	if d, err := node.ImageDigest(ctx, "good", ref); err != nil || d != want.String() {
		t.Fatalf("pulled %s (%v), want %s", d, err, want)
	}
	proxyWaitTarget(t, tgt.Addr+"/"+repo+":v1", want)
	registryIntact(t, tgt.Addr)
}

// TestFaultCopyInterrupted kills `copy` (SIGKILL) in the middle of a large
// blob. The target holds no manifest whose blobs are missing, and the next
// copy completes.
func TestFaultCopyInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	origin := startFaultRelay(t, src.Addr, "")
	img := images.Image(t, 128<<20, 2, "linux/"+runtime.GOARCH)
	want := images.Push(t, src.Addr+"/e2e/cp:v1", img)
	ref := origin.Addr + "/e2e/cp:v1"
	repo := mirrorRepo(origin.Addr, "e2e/cp")

	origin.rate.Store(32 << 20)
	cmd := copyCommand(t, origin.Addr, tgt.Addr, ref)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(ctx, t, "the copy to be half-way through its blobs", func() bool { return origin.blobSent.Load() >= 96<<20 })
	_ = cmd.Process.Kill()
	if err := <-exited; err == nil {
		t.Fatalf("copy finished before it was killed:\n%s", out.String())
	}
	if code := registryStatus(t, tgt.Addr, repo, "manifests", "v1"); code != http.StatusNotFound {
		t.Fatalf("after the interrupted copy the target answers %d for the tag, want 404", code)
	}
	if n := registryIntact(t, tgt.Addr); n != 0 {
		t.Fatalf("the target holds %d manifest(s) after an interrupted copy", n)
	}

	origin.rate.Store(0)
	again := copyCommand(t, origin.Addr, tgt.Addr, ref)
	if b, err := again.CombinedOutput(); err != nil {
		t.Fatalf("the next copy failed: %v\n%s", err, b)
	}
	proxyWaitTarget(t, tgt.Addr+"/"+repo+":v1", want)
	if n := registryIntact(t, tgt.Addr); n != 1 {
		t.Fatalf("the target holds %d complete manifests, want 1", n)
	}
}

// TestFaultTarget429: a target that answers 429 with Retry-After to the
// first try of every request it can ask to be repeated. The copy waits as
// told, retries and completes.
func TestFaultTarget429(t *testing.T) {
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	front := startFaultRelay(t, tgt.Addr, "")
	tried := map[string]bool{}
	front.throttle = func(r *http.Request) bool {
		// A PATCH streams the blob; its body cannot be sent again, so a
		// client can only give up on it: leave it alone.
		if r.Method == http.MethodPatch {
			return false
		}
		key := r.Method + " " + r.URL.Path
		if tried[key] {
			return false
		}
		tried[key] = true
		return true
	}
	img := images.Image(t, 1<<20, 2, "linux/"+runtime.GOARCH)
	want := images.Push(t, src.Addr+"/e2e/rl:v1", img)
	ref := src.Addr + "/e2e/rl:v1"

	cmd := copyCommand(t, src.Addr, front.Addr, ref)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy through a 429ing target failed: %v\n%s", err, b)
	}
	proxyWaitTarget(t, tgt.Addr+"/"+mirrorRepo(src.Addr, "e2e/rl")+":v1", want)
	registryIntact(t, tgt.Addr)

	reqs := front.Requests()
	limited, retried := 0, 0
	for i, r := range reqs {
		if r.Status != http.StatusTooManyRequests {
			continue
		}
		limited++
		// Every blob upload starts with a POST to the same path, so a later
		// POST there may be another blob's: only unique paths show retries.
		if strings.HasSuffix(r.Path, "/blobs/uploads/") || r.Path == "/v2/" {
			continue
		}
		for _, next := range reqs[i+1:] {
			if next.Method == r.Method && next.Path == r.Path {
				retried++
				// Retry-After: 1 was honoured (a lower bound: load only delays).
				if gap := next.Start.Sub(r.At); gap < 900*time.Millisecond {
					t.Errorf("%s %s retried %s after a 429 with Retry-After: 1", r.Method, r.Path, gap)
				}
				break
			}
		}
	}
	manifestPut := false
	for _, r := range reqs {
		manifestPut = manifestPut || r.Method == http.MethodPut && strings.Contains(r.Path, "/manifests/") && r.Status == http.StatusCreated
	}
	if limited < 3 || !manifestPut {
		t.Fatalf("%d requests were answered 429 and a manifest put %v: the case did not test what it says", limited, manifestPut)
	}
	t.Logf("target answered 429 %d times; %d of them were retried after Retry-After, and the copy completed", limited, retried)
	if retried == 0 {
		t.Fatal("no request was retried after its 429")
	}
}

// TestFaultTargetDownWebhook: with the target refusing connections, or
// hung, the webhook admits pods with their original image within the API
// server's deadline. The webhook is registered with failurePolicy: Fail, so
// an answer later than timeoutSeconds would fail the pod instead of being
// hidden by failing open.
func TestFaultTargetDownWebhook(t *testing.T) {
	kube := startKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	toTarget := func(ref string) string { return tgt.Addr + "/" + strings.Replace(ref, ":", "_", 1) }
	img := func(repo string) string {
		ref := src.Addr + "/team/" + repo + ":v1"
		images.Push(t, ref, images.Image(t, 4096, 1, "linux/amd64"))
		return ref
	}
	present := img("present")
	images.Push(t, toTarget(present), remoteImage(t, present, nil))

	w := newFaultWebhook(t, src.Addr, tgt.Addr)
	w.Addr = registryproc.FreeAddr(t)
	w.start(t)
	c := kube.Client
	createNamespace(ctx, t, c, "apps")
	const timeoutSeconds = 10
	registerFaultWebhook(ctx, t, c, "https://"+w.Addr+"/webhook", w.CA.CertPEM, admissionregistrationv1.Fail, timeoutSeconds)
	waitWebhookActive(ctx, t, c, present, toTarget(present))

	tgt.Stop()
	var hung *hungServer
	for _, mode := range []string{"refused", "hung"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "hung" {
				hung = startHung(t, tgt.Addr)
			}
			ref := img("fresh-" + mode) // never asked about: no cached answer
			start := time.Now()
			p, err := c.CoreV1().Pods("apps").Create(ctx, podSpec("target-"+mode, ref), metav1.CreateOptions{})
			took := time.Since(start)
			if err != nil {
				t.Fatalf("pod creation with the target %s failed after %s: %v", mode, took, err)
			}
			if got := p.Spec.Containers[0].Image; got != ref {
				t.Fatalf("image %q, want the original %q", got, ref)
			}
			if hung != nil && hung.Accepted() == 0 {
				t.Fatal("the webhook never connected to the hung target: the case did not test a hung target")
			}
			t.Logf("admitted with the original image in %s with the target %s (timeoutSeconds %d)", took.Round(time.Millisecond), mode, timeoutSeconds)
		})
	}
}

// TestFaultWebhookRestart creates pods without pause while the webhook is
// killed (SIGKILL) and started again, three times. With failurePolicy:
// Ignore no creation fails: pods made while it is down keep their image.
func TestFaultWebhookRestart(t *testing.T) {
	kube := startKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	present := src.Addr + "/team/present:v1"
	swapped := tgt.Addr + "/" + strings.Replace(present, ":", "_", 1)
	images.Push(t, present, images.Image(t, 4096, 1, "linux/amd64"))
	images.Push(t, swapped, remoteImage(t, present, nil))

	w := newFaultWebhook(t, src.Addr, tgt.Addr)
	w.Addr = registryproc.FreeAddr(t)
	wh := w.start(t)
	c := kube.Client
	createNamespace(ctx, t, c, "apps")
	registerWebhook(ctx, t, c, "https://"+w.Addr+"/webhook", w.CA.CertPEM)
	waitWebhookActive(ctx, t, c, present, swapped)

	var mu sync.Mutex
	var errs []error
	counts := map[string]int{}
	count := func(image string) int { mu.Lock(); defer mu.Unlock(); return counts[image] }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p, err := c.CoreV1().Pods("apps").Create(ctx, podSpec(fmt.Sprintf("load-%d-%d", g, i), present), metav1.CreateOptions{})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					counts[p.Spec.Containers[0].Image]++
				}
				mu.Unlock()
			}
		}()
	}
	for round := range 3 {
		// Up: pods are swapped; then killed mid-stream; pods keep their image.
		up := count(swapped)
		waitFor(ctx, t, "pods swapped by the running webhook", func() bool { return count(swapped) >= up+20 })
		_ = wh.cmd.Process.Kill()
		<-wh.done
		down := count(present)
		waitFor(ctx, t, "pods admitted while the webhook is down", func() bool { return count(present) >= down+10 })
		wh = w.start(t)
		t.Logf("round %d: killed and restarted the webhook", round+1)
	}
	up := count(swapped)
	waitFor(ctx, t, "pods swapped after the last restart", func() bool { return count(swapped) >= up+20 })
	close(stop)
	wg.Wait()
	t.Logf("pods created: %d swapped, %d with the original image (webhook down), %d failed", counts[swapped], counts[present], len(errs))
	for i, err := range errs {
		if i < 5 {
			t.Errorf("pod creation failed: %v", err)
		}
	}
}
