//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// loadRequest is one GET through the proxy and the digest its body must have.
type loadRequest struct {
	path string
	want v1.Hash
}

// TestLoadProxy sends 1000 concurrent manifest and blob requests through the
// proxy process: half for images the target holds, half for images only the
// source has (fetched, coalesced and copied). Every answer must be complete
// and match its digest; peak RSS stays bounded and the proxy's goroutines
// return to where they were.
func TestLoadProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	px := startProxyProcess(t, faultProxyConfig(tgt.Addr, src.Addr, 30*time.Second))

	// 20 images of a config and two 512 KiB layers; the first 10 are in
	// the target too. Five requests each, ten times over: 1000.
	var distinct []loadRequest
	// A warm-up image outside the load: its pull starts the copy engine.
	warmImg := images.Image(t, 4096, 1, "linux/amd64")
	warmDigest := images.Push(t, src.Addr+"/load/warm:v1", warmImg)
	warm := loadRequest{"/v2/load/warm/manifests/v1", warmDigest}
	for i := range 20 {
		repo := fmt.Sprintf("load/img-%d", i)
		img := images.Image(t, 512<<10, 2, "linux/amd64")
		d := images.Push(t, src.Addr+"/"+repo+":v1", img)
		if i < 10 {
			images.Push(t, tgt.Addr+"/"+mirrorRepo(src.Addr, repo)+":v1", img)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		base := "/v2/" + repo
		rs := []loadRequest{{base + "/manifests/v1", d}, {base + "/manifests/" + d.String(), d}}
		for _, b := range append([]v1.Hash{m.Config.Digest}, layerDigests(m)...) {
			rs = append(rs, loadRequest{base + "/blobs/" + b.String(), b})
		}
		distinct = append(distinct, rs...)
	}

	client := &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 1000}}
	get := func(r loadRequest) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+px.Addr+r.path+"?ns="+src.Addr, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", manifestTypes)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil {
			return fmt.Errorf("%s: read after %d bytes: %w", r.path, n, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", r.path, resp.Status)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != r.want.String() {
			return fmt.Errorf("%s: body has digest %s, want %s", r.path, got, r.want)
		}
		return nil
	}
	// A first miss opens the proxy's connections and starts the copy
	// engine: the baseline is a proxy that has served, not one that never has.
	if err := get(warm); err != nil {
		t.Fatal(err)
	}
	proxyWaitTarget(t, tgt.Addr+"/"+mirrorRepo(src.Addr, "load/warm")+":v1", warmDigest)
	client.CloseIdleConnections()
	metricsURL := "http://" + px.Addr + "/metrics"
	mc := &http.Client{Timeout: 10 * time.Second}
	baseline, err := scrapeGauge(mc, metricsURL, "go_goroutines")
	if err != nil {
		t.Fatal(err)
	}

	start := make(chan struct{})
	errs := make(chan error, 1000)
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- get(distinct[i%len(distinct)])
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed < 5 {
				t.Errorf("request failed: %v", err)
			}
			failed++
		}
	}
	if failed > 0 {
		t.Fatalf("%d of 1000 requests failed", failed)
	}

	hwm, err := procStatus(px.cmd.Process.Pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1000 concurrent requests (500 target hits, 500 source misses) in %s; proxy peak RSS (VmHWM) %.1f MiB",
		took.Round(time.Millisecond), float64(hwm)/1024)
	const rssBound = 256 << 10 // kB
	if hwm > rssBound {
		t.Errorf("proxy peak RSS %d kB, above the %d kB bound", hwm, rssBound)
	}

	// The client's connections close, the copies the misses started finish;
	// idle upstream connections may take their idle timeout (90s) to go.
	client.CloseIdleConnections()
	peak, _ := scrapeGauge(mc, metricsURL, "go_goroutines")
	const slack = 10
	var now float64
	settle := time.Now()
	for {
		if now, err = scrapeGauge(mc, metricsURL, "go_goroutines"); err != nil {
			t.Fatal(err)
		}
		if now <= baseline+slack {
			break
		}
		if time.Since(settle) > 150*time.Second {
			t.Fatalf("proxy goroutines %v, %v before the load: not back to baseline after %s", now, baseline, time.Since(settle).Round(time.Second))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("proxy goroutines: %v before, %v just after, %v settled (in %s)", baseline, peak, now, time.Since(settle).Round(100*time.Millisecond))
}

const manifestTypes = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// loadDuration is $LOAD_DURATION (default 10s; 60s for the figures).
func loadDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("LOAD_DURATION")
	if v == "" {
		return 10 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("LOAD_DURATION=%q: want a duration such as 60s", v)
	}
	return d
}

// TestLoadWebhook sends AdmissionReviews to the webhook process over HTTPS
// at 500 a second for $LOAD_DURATION (open loop: a slow answer does not
// slow the sender), for pods whose images are in the target, not in it,
// and outside every source. Every review must be answered, allowed, for
// its uid, with the expected image; it reports p50 and p99.
func TestLoadWebhook(t *testing.T) {
	const rate = 500
	dur := loadDuration(t)
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	present := src.Addr + "/team/present:v1"
	swapped := tgt.Addr + "/" + strings.Replace(present, ":", "_", 1)
	missing := src.Addr + "/team/missing:v1"
	images.Push(t, present, images.Image(t, 4096, 1, "linux/amd64"))
	images.Push(t, swapped, remoteImage(t, present, nil))
	images.Push(t, missing, images.Image(t, 4096, 1, "linux/amd64"))
	other := "quay.io/other/untouched:v1"

	w := newFaultWebhook(t, src.Addr, tgt.Addr)
	w.Addr = registryproc.FreeAddr(t)
	w.start(t)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: w.CA.Pool()}, MaxIdleConnsPerHost: 256}}

	type result struct {
		took time.Duration
		err  error
	}
	send := func(i int) result {
		img := []string{present, missing, other}[i%3]
		pod := podSpec(fmt.Sprintf("load-%d", i), img)
		pod.Namespace = "apps"
		raw, err := json.Marshal(pod)
		if err != nil {
			return result{err: err}
		}
		uid := types.UID(fmt.Sprintf("uid-%d", i))
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: uid, Namespace: "apps", Operation: admissionv1.Create,
				Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
				Object:   runtime.RawExtension{Raw: raw}},
		})
		if err != nil {
			return result{err: err}
		}
		start := time.Now()
		resp, err := client.Post("https://"+w.Addr+"/webhook?timeout=10s", "application/json", bytes.NewReader(body))
		if err != nil {
			return result{err: err}
		}
		defer resp.Body.Close()
		var review admissionv1.AdmissionReview
		err = json.NewDecoder(resp.Body).Decode(&review)
		took := time.Since(start)
		switch {
		case resp.StatusCode != http.StatusOK:
			return result{err: fmt.Errorf("review %d: %s", i, resp.Status)}
		case err != nil:
			return result{err: fmt.Errorf("review %d: %w", i, err)}
		case review.Response == nil || review.Response.UID != uid || !review.Response.Allowed:
			return result{err: fmt.Errorf("review %d: response %+v", i, review.Response)}
		case img == present && !strings.Contains(string(review.Response.Patch), swapped):
			return result{err: fmt.Errorf("review %d: image in the target not swapped: patch %s", i, review.Response.Patch)}
		case img == other && len(review.Response.Patch) > 0 && strings.Contains(string(review.Response.Patch), "/image"):
			return result{err: fmt.Errorf("review %d: an image outside the sources was patched: %s", i, review.Response.Patch)}
		}
		return result{took: took}
	}

	total := int(dur.Seconds() * rate)
	results := make([]result, total)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range total {
		if d := time.Until(began.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = send(i) }()
	}
	sent := time.Since(began)
	wg.Wait()
	var lat []time.Duration
	failed := 0
	for _, r := range results {
		if r.err != nil {
			if failed < 5 {
				t.Errorf("%v", r.err)
			}
			failed++
			continue
		}
		lat = append(lat, r.took)
	}
	if failed > 0 {
		t.Fatalf("%d of %d admission reviews failed", failed, total)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("%d admission reviews over HTTPS in %s (target rate %d/s, achieved %.0f/s): 0 errors, p50 %s, p99 %s, max %s",
		total, sent.Round(time.Millisecond), rate, float64(total)/sent.Seconds(),
		pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
}
