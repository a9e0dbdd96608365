// Package registryproc starts real registry processes (Debian's
// docker-registry, distribution 2.8) on free loopback ports for tests, and
// reads their access logs so tests can count what clients fetched.
package registryproc

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry executable; override with $REGISTRY_BIN.
func Binary() string {
	if b := os.Getenv("REGISTRY_BIN"); b != "" {
		return b
	}
	return "docker-registry"
}

// Registry is one running registry process.
type Registry struct {
	Addr    string // 127.0.0.1:PORT
	Dir     string // storage root
	cmd     *exec.Cmd
	logMu   sync.Mutex
	log     bytes.Buffer
	cfgPath string
}

// Options configure a registry.
type Options struct {
	// Htpasswd, when set, is the content of an htpasswd file (bcrypt) the
	// registry requires basic auth against.
	Htpasswd string
	// Dir reuses a storage folder (to restart a registry on the same data).
	Dir string
	// Addr reuses an address (to restart on the same port).
	Addr string
	// ProxyRemote makes it distribution's pull-through cache of this
	// registry URL (proxy.remoteurl): the peer the proxy is measured against.
	ProxyRemote string
}

// Htpasswd is an htpasswd line for user and pass (Options.Htpasswd).
func Htpasswd(t testing.TB, user, pass string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(hash) + "\n"
}

// Start runs a registry until the test ends. It skips the test when the
// binary is missing and REGISTRY_REQUIRED is unset; CI sets it, so there a
// missing binary fails instead.
func Start(t testing.TB, o Options) *Registry {
	t.Helper()
	bin, err := exec.LookPath(Binary())
	if err != nil {
		if os.Getenv("REGISTRY_REQUIRED") != "" {
			t.Fatalf("registry binary %s not found: %v", Binary(), err)
		}
		t.Skipf("registry binary %s not found (apt-get install docker-registry); CI installs it", Binary())
	}
	r := &Registry{Dir: o.Dir, Addr: o.Addr}
	if r.Dir == "" {
		r.Dir = t.TempDir()
	}
	if r.Addr == "" {
		r.Addr = FreeAddr(t)
	}
	cfgDir := t.TempDir()
	auth := ""
	if o.Htpasswd != "" {
		hp := filepath.Join(cfgDir, "htpasswd")
		if err := os.WriteFile(hp, []byte(o.Htpasswd), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", hp)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: test-secret
%s`, r.Dir, r.Addr, auth)
	if o.ProxyRemote != "" {
		cfg += fmt.Sprintf("proxy:\n  remoteurl: %s\n", o.ProxyRemote)
	}
	r.cfgPath = filepath.Join(cfgDir, "config.yml")
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "serve", r.cfgPath)
	r.cmd.Stdout = &lockedWriter{r: r}
	r.cmd.Stderr = &lockedWriter{r: r}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(r.Stop)
	if err := r.waitReady(10 * time.Second); err != nil {
		t.Fatalf("registry on %s: %v\n%s", r.Addr, err, r.Log())
	}
	return r
}

type lockedWriter struct{ r *Registry }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.r.logMu.Lock()
	defer w.r.logMu.Unlock()
	return w.r.log.Write(b)
}

func (r *Registry) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s", d)
}

// Stop ends the process (idempotent).
func (r *Registry) Stop() {
	if r.cmd == nil || r.cmd.Process == nil || r.cmd.ProcessState != nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}

// Log is everything the process printed.
func (r *Registry) Log() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.log.String()
}

// ResetLog forgets what was logged so far.
func (r *Registry) ResetLog() {
	r.settle()
	r.logMu.Lock()
	defer r.logMu.Unlock()
	r.log.Reset()
}

var accessLine = regexp.MustCompile(`"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d{3})`)

// Request is one line of the access log.
type Request struct {
	Method, Path string
	Status       string
}

// settle waits until the log has not grown for 150ms (at most 3s): the
// registry writes an access-log line after it has answered.
func (r *Registry) settle() string {
	last, deadline := r.Log(), time.Now().Add(3*time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(150 * time.Millisecond)
		cur := r.Log()
		if cur == last {
			return cur
		}
		last = cur
	}
	return last
}

// Requests parses the access log.
func (r *Registry) Requests() []Request {
	var out []Request
	sc := bufio.NewScanner(strings.NewReader(r.settle()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := accessLine.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, Request{Method: m[1], Path: m[2], Status: m[3]})
		}
	}
	return out
}

// Count counts access-log requests with method whose path contains part.
func (r *Registry) Count(method, part string) int {
	n := 0
	for _, q := range r.Requests() {
		if q.Method == method && strings.Contains(q.Path, part) {
			n++
		}
	}
	return n
}

// FreeAddr returns a free 127.0.0.1 port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Pid is the registry process's id (for its memory figures).
func (r *Registry) Pid() int { return r.cmd.Process.Pid }
