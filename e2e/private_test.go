//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/k8s-image-swapper/k8s-image-swapper/daemonset/hoststoml"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// TestPrivateImages pulls an image from a source that needs credentials
// through the proxy (proxy.private: deny, the default), with real
// containerd 1.6 and 2.x, and records in front of the proxy what containerd
// sends to the mirror host. It shows:
//   - a pull with credentials (crictl --creds, CRI; ctr --user) succeeds, and
//     once the image is in the target, is served from the target;
//   - an anonymous pull (crictl, ctr), or one with a wrong password, fails: the proxy answers the manifest
//     401 with a Basic challenge, containerd goes on to the origin, which
//     refuses it; no manifest or blob of the image ever reaches a request
//     to the mirror without credentials the source accepts;
//   - a kubelet-style CRI pull (credentials with ServerAddress = the origin)
//     succeeds: containerd does not send those credentials to the mirror, and
//     the pull is served by the origin.
func TestPrivateImages(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		name := "containerd 1.6"
		if v2 {
			name = "containerd 2.x"
		}
		t.Run(name, func(t *testing.T) { testPrivateImages(t, v2) })
	}
}

func testPrivateImages(t *testing.T, v2 bool) {
	node := startContainerdWith(t, containerdOptions{V2: v2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const user, pass = "puller", "s3cret"
	src := registryproc.Start(t, registryproc.Options{Htpasswd: registryproc.Htpasswd(t, user, pass)})
	tgt := registryproc.Start(t, registryproc.Options{})
	px := startProxyProcess(t, fmt.Sprintf(`logLevel: debug
source:
  registries:
    - type: generic
      generic:
        registry: %q
        insecure: true
        username: %q
        password: %q
target:
  type: generic
  generic:
    registry: %q
    insecure: true
proxy:
  registries: [%q]
`, src.Addr, user, pass, tgt.Addr, src.Addr))
	rec := startRecorder(t, px.Addr)
	if _, err := hoststoml.Apply(ctx, hoststoml.Options{
		CertsDir: node.HostsDir, ProxyURL: "http://" + rec.Addr, ContainerdConfig: node.Config,
		Hosts: []hoststoml.Host{{Name: src.Addr}}, PlainHTTP: map[string]bool{src.Addr: true},
	}); err != nil {
		t.Fatal(err)
	}
	img := images.Image(t, 64<<10, 2, "linux/"+runtime.GOARCH)
	ref := src.Addr + "/e2e/secret:v1"
	pushAuth(t, ref, img, &authn.Basic{Username: user, Password: pass})
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	mirrorRef := tgt.Addr + "/" + strings.Replace(src.Addr, ":", "_", 1) + "/e2e/secret:v1"
	creds := user + ":" + pass
	fromTarget := func() float64 {
		return px.metric(t, "k8s_image_swapper_proxy_requests_total", map[string]string{"served_from": "target", "kind": "manifest"})
	}

	t.Run("crictl pull with credentials (CRI auth)", func(t *testing.T) {
		rec.Reset()
		if _, err := node.Crictl(t, ctx, "pull", "--creds", creds, ref); err != nil {
			t.Fatal(err)
		}
		t.Logf("mirror saw:\n%s", rec)
		if !rec.Saw(func(q recorded) bool { return q.User == user && q.Status == http.StatusOK }) {
			t.Errorf("containerd did not send the CRI credentials to the mirror")
		}
		proxyWaitTarget(t, mirrorRef, want)
		// Again, now from the target: the credentials are checked with the source.
		if _, err := node.Crictl(t, ctx, "rmi", ref); err != nil {
			t.Fatal(err)
		}
		before := fromTarget()
		if _, err := node.Crictl(t, ctx, "pull", "--creds", creds, ref); err != nil {
			t.Fatal(err)
		}
		if fromTarget() <= before {
			t.Errorf("the second pull with credentials was not served from the target:\n%s", rec)
		}
	})

	t.Run("ctr pull with --user", func(t *testing.T) {
		rec.Reset()
		if _, err := node.Ctr(ctx, "--namespace", "user", "images", "pull", "--hosts-dir", node.HostsDir,
			"--user", creds, ref); err != nil {
			t.Fatal(err)
		}
		t.Logf("mirror saw:\n%s", rec)
		if !rec.Saw(func(q recorded) bool { return q.User == user && q.Status == http.StatusOK }) {
			t.Errorf("ctr did not send its credentials to the mirror")
		}
	})

	t.Run("anonymous pulls are denied", func(t *testing.T) {
		rec.Reset()
		if err := node.Pull(ctx, "anon", ref); err == nil {
			t.Fatal("ctr pulled the private image without credentials")
		}
		if out, err := node.Crictl(t, ctx, "pull", src.Addr+"/e2e/secret@"+want.String()); err == nil {
			t.Fatalf("crictl pulled the private image without credentials: %s", out)
		}
		if out, err := node.Crictl(t, ctx, "pull", "--creds", user+":wrong", ref); err == nil {
			t.Fatalf("crictl pulled the private image with a wrong password: %s", out)
		}
		t.Logf("mirror saw:\n%s", rec)
		if !rec.Saw(func(q recorded) bool {
			return q.Status == http.StatusUnauthorized && strings.HasPrefix(q.Challenge, "Basic ")
		}) {
			t.Errorf("the proxy never challenged the anonymous pulls")
		}
		if len(rec.Leaks(user)) > 0 {
			t.Errorf("the mirror served private content without credentials: %v", rec.Leaks(user))
		}
		// containerd went on to the origin, which refused it.
		if n := src.Count(http.MethodHead, "/v2/e2e/secret/manifests/") + src.Count(http.MethodGet, "/v2/e2e/secret/manifests/"); n == 0 {
			t.Errorf("containerd did not go on to the origin after the proxy's 401")
		}
	})

	t.Run("kubelet-style CRI pull (ServerAddress is the origin)", func(t *testing.T) {
		if _, err := node.Crictl(t, ctx, "rmi", ref); err != nil {
			t.Fatal(err)
		}
		rec.Reset()
		// A docker config key with a scheme: containerd's ParseAuth reads
		// the address as a URL, and a bare host:port does not parse.
		if err := criPull(ctx, node.Socket, ref, user, pass, "https://"+src.Addr); err != nil {
			t.Fatal(err)
		}
		t.Logf("mirror saw:\n%s", rec)
		if rec.Saw(func(q recorded) bool { return q.User != "" }) {
			t.Logf("containerd sent ServerAddress-bound credentials to the mirror")
		}
		if len(rec.Leaks(user)) > 0 {
			t.Errorf("the mirror served private content without credentials: %v", rec.Leaks(user))
		}
	})
	if t.Failed() {
		t.Logf("proxy log:\n%s", px.Log())
	}
}

// recorder is a reverse proxy in front of the node proxy that notes, for
// every request containerd sends the mirror, who it claimed to be and what
// it was answered.
type recorder struct {
	Addr string
	mu   sync.Mutex
	seen []recorded
}

type recorded struct {
	Method, Path, NS string
	User             string // the Basic user sent, "" for none
	Scheme           string // of the Authorization header
	Status           int
	Challenge        string // WWW-Authenticate answered
}

func startRecorder(t *testing.T, backend string) *recorder {
	t.Helper()
	r := &recorder{Addr: registryproc.FreeAddr(t)}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	rp.ModifyResponse = func(resp *http.Response) error {
		q := recorded{Method: resp.Request.Method, Path: resp.Request.URL.Path, NS: resp.Request.URL.Query().Get("ns"),
			Status: resp.StatusCode, Challenge: resp.Header.Get("WWW-Authenticate")}
		if a := resp.Request.Header.Get("Authorization"); a != "" {
			q.Scheme, _, _ = strings.Cut(a, " ")
			q.User, _, _ = resp.Request.BasicAuth()
		}
		r.mu.Lock()
		r.seen = append(r.seen, q)
		r.mu.Unlock()
		return nil
	}
	srv := &http.Server{Addr: r.Addr, Handler: rp}
	go func() { _ = srv.ListenAndServe() }()
	t.Cleanup(func() { _ = srv.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + r.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recorder did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Reset()
	return r
}

func (r *recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = nil
}

func (r *recorder) Saw(f func(recorded) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.seen {
		if f(q) {
			return true
		}
	}
	return false
}

// Leaks are manifest and blob requests answered with content although
// they did not come as user.
func (r *recorder) Leaks(user string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, q := range r.seen {
		content := strings.Contains(q.Path, "/manifests/") || strings.Contains(q.Path, "/blobs/")
		if content && q.Status < 300 && q.User != user {
			out = append(out, q)
		}
	}
	return out
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, q := range r.seen {
		auth := "-"
		if q.Scheme != "" {
			auth = q.Scheme + " " + q.User
		}
		fmt.Fprintf(&b, "  %s %s ns=%s auth=%q -> %d %s\n", q.Method, q.Path, q.NS, auth, q.Status, q.Challenge)
	}
	return b.String()
}

// criPull calls the CRI's PullImage as the kubelet does: with the pull
// secret's credentials and its ServerAddress (the docker config key).
func criPull(ctx context.Context, socket, image, user, pass, server string) error {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	var spec, auth, req []byte
	spec = protowire.AppendTag(spec, 1, protowire.BytesType)
	spec = protowire.AppendString(spec, image)
	for i, v := range []string{user, pass, base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)), server} {
		auth = protowire.AppendTag(auth, protowire.Number(i+1), protowire.BytesType)
		auth = protowire.AppendString(auth, v)
	}
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, spec)
	req = protowire.AppendTag(req, 2, protowire.BytesType)
	req = protowire.AppendBytes(req, auth)
	var resp []byte
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := conn.Invoke(ctx, "/runtime.v1.ImageService/PullImage", &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
		return fmt.Errorf("CRI PullImage %s (ServerAddress %s): %w", image, server, err)
	}
	return nil
}

// rawCodec sends and receives protobuf bytes as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }
