package proxy

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// A tag that moved at the source is served from the source and copied
// again, once tagTTL has passed (every time here: the fetch layer's
// TestTagTTL shows that within it the source is not asked again).
func TestTagMoved(t *testing.T) {
	e := newEnv(t, func(o *setup) { o.fetch.TagTTL = time.Nanosecond })
	reg := e.src.Addr
	first := e.push(t, "team/app", "latest", blobImage(t, 1, 1000))
	e.get(t, http.MethodGet, reg, "/v2/team/app/manifests/latest")
	e.waitTarget(t, "team/app", "latest", first)

	second := e.push(t, "team/app", "latest", blobImage(t, 1, 1000))
	before := served(reg, "manifest", fromSource)
	resp, body := e.get(t, http.MethodGet, reg, "/v2/team/app/manifests/latest")
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s", resp.Status, body)
	}
	checkDigest(t, body, second.String())
	if served(reg, "manifest", fromSource)-before != 1 {
		t.Errorf("the moved tag was not served from the source")
	}
	e.waitTarget(t, "team/app", "latest", second)
}

// When the source cannot be asked, the target's copy of a tag is served.
func TestSourceDownServesTargetTag(t *testing.T) {
	e := newEnv(t, func(o *setup) { o.fetch.TagTTL = time.Millisecond; o.UpstreamTimeout = 2 * time.Second })
	want := e.push(t, "team/app", "v1", blobImage(t, 1, 1000))
	e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/v1")
	e.waitTarget(t, "team/app", "v1", want)
	e.src.Stop()
	time.Sleep(5 * time.Millisecond)
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		resp, body := e.get(t, m, e.src.Addr, "/v2/team/app/manifests/v1")
		if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != want.String() {
			t.Fatalf("%s with the source down: %s %s", m, resp.Status, body)
		}
	}
	// Not in the target, source down: a 5xx, so containerd tries the next host.
	resp, body := e.get(t, http.MethodGet, e.src.Addr, "/v2/team/other/manifests/v1")
	if resp.StatusCode < 500 {
		t.Fatalf("missing everywhere, source down: %s %s", resp.Status, body)
	}
}

// A source that hangs does not hold up a pull the target can serve.
func TestHungSourceServesTargetTag(t *testing.T) {
	e := newEnv(t, func(o *setup) { o.fetch.TagTTL = time.Millisecond; o.UpstreamTimeout = 5 * time.Minute })
	want := e.push(t, "team/app", "v1", blobImage(t, 1, 1000))
	e.get(t, http.MethodGet, e.src.Addr, "/v2/team/app/manifests/v1")
	e.waitTarget(t, "team/app", "v1", want)
	e.src.Stop()
	hang, err := net.Listen("tcp", e.src.Addr) // accepts, never answers
	must(t, err)
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(e.srv.URL + "/v2/team/app/manifests/v1?ns=" + e.src.Addr)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != want.String() {
		t.Fatalf("with the source hung: %s", resp.Status)
	}
}
