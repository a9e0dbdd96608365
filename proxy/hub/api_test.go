package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/peers"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
)

// engine answers as a copy engine would and records what it was asked.
type engine struct {
	mu      sync.Mutex
	asked   []string
	present bool
	err     error
	auth    []string // the Authorization of each request to the server
}

func (e *engine) Exists(_ context.Context, src reference.Named) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, "exists "+src.String())
	return e.present, e.err
}

func (e *engine) Mirror(_ context.Context, how policy.Copy, _ time.Duration, req mirror.Request) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, string(how)+" "+req.Source.String())
	return e.err
}

func serveAPI(t *testing.T, e Mirror, set *peers.Set) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	NewAPI(e, set, http.DefaultTransport, slog.New(slog.DiscardHandler)).Register(mux)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e, ok := e.(*engine); ok {
			e.mu.Lock()
			e.auth = append(e.auth, r.Header.Get("Authorization"))
			e.mu.Unlock()
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func call(t *testing.T, method, u string, header ...string) (int, answer) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%s %s: body %q is not an answer: %v", method, u, b, err)
	}
	return resp.StatusCode, a
}

func TestAPIBadRequests(t *testing.T) {
	e := &engine{}
	s := serveAPI(t, e, nil)
	for _, tc := range []struct {
		method, query string
		status        int
		says          string
	}{
		{http.MethodGet, "image=", http.StatusBadRequest, ""},
		{http.MethodGet, "image=nginx:not%20a%20tag", http.StatusBadRequest, ""},
		{http.MethodPost, "image=docker.io/library/nginx:1&policy=sometimes&deadline=1s", http.StatusBadRequest, "sometimes"},
		{http.MethodPost, "image=docker.io/library/nginx:1&policy=immediate&deadline=soon", http.StatusBadRequest, "soon"},
	} {
		path := existsPath
		if tc.method == http.MethodPost {
			path = copyPath
		}
		status, a := call(t, tc.method, s.URL+path+"?"+tc.query)
		if status != tc.status || a.Error == "" || !strings.Contains(a.Error, tc.says) {
			t.Errorf("%s %s?%s: %d %+v, want %d and an error naming %q", tc.method, path, tc.query, status, a, tc.status, tc.says)
		}
	}
	if len(e.asked) != 0 {
		t.Errorf("bad requests reached the engine: %v", e.asked)
	}
	if resp, err := http.Post(s.URL+existsPath+"?image=nginx", "", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %v %v, want 405", existsPath, resp.Status, err)
	}
}

func TestAPIAnswers(t *testing.T) {
	e := &engine{present: true}
	s := serveAPI(t, e, nil)
	if status, a := call(t, http.MethodGet, s.URL+existsPath+"?image=nginx:1"); status != 200 || !a.Present {
		t.Errorf("exists: %d %+v, want present", status, a)
	}
	if status, a := call(t, http.MethodPost, s.URL+copyPath+"?image=nginx:1&policy=immediate&deadline=1s"); status != 200 || !a.Copied {
		t.Errorf("copy immediate: %d %+v, want copied", status, a)
	}
	if status, a := call(t, http.MethodPost, s.URL+copyPath+"?image=nginx:1&policy=delayed"); status != http.StatusAccepted || !a.Queued {
		t.Errorf("copy delayed: %d %+v, want 202 queued", status, a)
	}
	e.err = mirror.ErrQueueFull
	if status, _ := call(t, http.MethodPost, s.URL+copyPath+"?image=nginx:1&policy=delayed"); status != http.StatusServiceUnavailable {
		t.Errorf("copy with the queue full: %d, want 503", status)
	}
	e.err = context.DeadlineExceeded
	if status, _ := call(t, http.MethodPost, s.URL+copyPath+"?image=nginx:1&policy=force&deadline=1s"); status != http.StatusGatewayTimeout {
		t.Errorf("copy past its deadline: %d, want 504", status)
	}
	want := []string{"exists docker.io/library/nginx:1", "immediate docker.io/library/nginx:1", "delayed docker.io/library/nginx:1"}
	if strings.Join(e.asked[:3], ",") != strings.Join(want, ",") {
		t.Errorf("engine asked %v, want %v first", e.asked, want)
	}
}

// Two replicas: each question is answered by the repository's owner,
// whichever replica it was sent to; with the owner gone, by the one asked.
func TestAPIForwardsToOwner(t *testing.T) {
	ea, eb := &engine{}, &engine{}
	var sa, sb *httptest.Server
	setA, setB := &peers.Set{}, &peers.Set{}
	sa, sb = serveAPI(t, ea, setA), serveAPI(t, eb, setB)
	a, b := strings.TrimPrefix(sa.URL, "http://"), strings.TrimPrefix(sb.URL, "http://")
	*setA, *setB = *peers.New(a, []string{a, b}), *peers.New(b, []string{a, b})

	// A repository B owns, asked of A.
	var image string
	for _, repo := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		if owner, _ := setA.Owner("docker.io/library/" + repo); owner == b {
			image = "docker.io/library/" + repo + ":1"
			break
		}
	}
	if image == "" {
		t.Fatal("no repository of eight is owned by the second replica")
	}
	q := "?image=" + url.QueryEscape(image)
	if status, _ := call(t, http.MethodGet, sa.URL+existsPath+q, "Authorization", "Bearer webhook"); status != 200 {
		t.Fatalf("exists via A: %d", status)
	}
	if len(ea.asked) != 0 || len(eb.asked) != 1 {
		t.Errorf("asked A %v, B %v: want the owner B only", ea.asked, eb.asked)
	}
	// The owner checks the caller's token too (tokenreview in front of each replica).
	if len(eb.auth) != 1 || eb.auth[0] != "Bearer webhook" {
		t.Errorf("the owner got Authorization %q, want the caller's", eb.auth)
	}
	sb.Close()
	if status, _ := call(t, http.MethodGet, sa.URL+existsPath+q); status != 200 {
		t.Fatalf("exists via A with B down: %d", status)
	}
	if len(ea.asked) != 1 {
		t.Errorf("with the owner down, A answered %v: want once", ea.asked)
	}
}

// The webhook's client: the hub's answer when it gives one; its own
// engine's when the hub errs or is gone; the hub's error without one.
func TestClientFallsBack(t *testing.T) {
	hubEngine, local := &engine{present: true}, &engine{}
	s := serveAPI(t, hubEngine, nil)
	u, _ := url.Parse(s.URL)
	src, _ := reference.ParseNormalizedNamed("nginx:1")
	c := NewClient(u, http.DefaultTransport, time.Second, local, nil, slog.New(slog.DiscardHandler))
	if ok, err := c.Exists(context.Background(), src); err != nil || !ok || len(local.asked) != 0 {
		t.Errorf("Exists: %v %v, local asked %v: want the hub's yes", ok, err, local.asked)
	}
	hubEngine.err = errors.New("target down")
	if ok, err := c.Exists(context.Background(), src); err != nil || ok || len(local.asked) != 1 {
		t.Errorf("Exists with the hub erring: %v %v, local asked %v: want the local answer", ok, err, local.asked)
	}
	s.Close()
	if err := c.Mirror(context.Background(), policy.CopyImmediate, time.Second, mirror.Request{Source: src}); err != nil || len(local.asked) != 2 {
		t.Errorf("Mirror with the hub gone: %v, local asked %v: want a local copy", err, local.asked)
	}
	alone := NewClient(u, http.DefaultTransport, time.Second, nil, nil, slog.New(slog.DiscardHandler))
	if _, err := alone.Exists(context.Background(), src); err == nil {
		t.Error("Exists with the hub gone and no local engine: no error")
	}
}

// The client sends the token file's content, read again for each question
// (the kubelet rotates it); without the file it asks nothing of the hub and
// answers locally.
func TestClientSendsToken(t *testing.T) {
	hubEngine, local := &engine{}, &engine{}
	s := serveAPI(t, hubEngine, nil)
	u, _ := url.Parse(s.URL)
	src, _ := reference.ParseNormalizedNamed("nginx:1")
	file := filepath.Join(t.TempDir(), "token")
	c := NewClient(u, http.DefaultTransport, time.Second, local, TokenFile(file), slog.New(slog.DiscardHandler))
	for _, tok := range []string{"first", "rotated"} {
		if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exists(context.Background(), src); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(hubEngine.auth, ",") != "Bearer first,Bearer rotated" {
		t.Errorf("the hub got Authorization %q, want each token as the file held it", hubEngine.auth)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exists(context.Background(), src); err != nil || len(hubEngine.auth) != 2 || len(local.asked) != 1 {
		t.Errorf("without the token file: %v, hub asked %d times, local %v: want the local answer", err, len(hubEngine.auth), local.asked)
	}
}

func TestParseURL(t *testing.T) {
	for _, s := range []string{"http://hub:7440", "https://hub.example", "http://10.0.0.1:7440/"} {
		if _, err := ParseURL(s); err != nil {
			t.Errorf("ParseURL(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "hub:7440", "ftp://hub", "http://", "http://hub/v2", "http://hub?x=1"} {
		if _, err := ParseURL(s); err == nil {
			t.Errorf("ParseURL(%q): no error", s)
		}
	}
}
