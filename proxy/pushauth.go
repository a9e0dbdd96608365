package proxy

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/auth"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // registers "htpasswd"
)

// PushOptions are the credentials of target.local.push; at least one is set.
type PushOptions struct {
	// Htpasswd is an htpasswd file of bcrypt entries, checked by
	// distribution's own htpasswd access controller (re-read when it changes).
	Htpasswd string
	// TokenFile holds a token accepted as "Authorization: Bearer <token>" or
	// as the password of Basic credentials (re-read when it changes).
	TokenFile string
}

// pushAuth checks a push's credentials.
type pushAuth struct {
	htpasswd auth.AccessController // nil without an htpasswd file
	token    *tokenFile            // nil without a token file
}

func newPushAuth(o PushOptions) (*pushAuth, error) {
	if o.Htpasswd == "" && o.TokenFile == "" {
		return nil, errors.New("push: no credentials: give an htpasswd file or a token file")
	}
	a := &pushAuth{}
	if o.Htpasswd != "" {
		// distribution's controller writes a file with a random user when
		// the path is missing; a missing file is the operator's mistake.
		if err := checkHtpasswd(o.Htpasswd); err != nil {
			return nil, err
		}
		ac, err := auth.GetAccessController("htpasswd", map[string]any{"realm": realm, "path": o.Htpasswd})
		if err != nil {
			return nil, fmt.Errorf("push htpasswd %s: %w", o.Htpasswd, err)
		}
		a.htpasswd = ac
	}
	if o.TokenFile != "" {
		a.token = &tokenFile{path: o.TokenFile}
		if _, err := a.token.value(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// check reports who r is when its credentials are accepted.
func (a *pushAuth) check(r *http.Request) (string, bool) {
	if a.token != nil {
		tok, err := a.token.value()
		if err == nil {
			if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && same(bearer, tok) {
				return "token", true
			}
			if user, pass, ok := r.BasicAuth(); ok && same(pass, tok) {
				return user, true
			}
		}
	}
	if a.htpasswd != nil {
		if _, _, ok := r.BasicAuth(); ok {
			if g, err := a.htpasswd.Authorized(r); err == nil {
				return g.User.Name, true
			}
		}
	}
	return "", false
}

func same(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// checkHtpasswd makes sure the file exists and holds bcrypt entries, the
// only kind distribution accepts, so a wrong file fails at start-up.
func checkHtpasswd(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("push htpasswd: %w", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		user, hash, ok := strings.Cut(t, ":")
		if !ok || user == "" || !strings.HasPrefix(hash, "$2") {
			return fmt.Errorf("push htpasswd %s line %d: want user:bcrypt-hash (htpasswd -B)", path, line)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("push htpasswd %s: no users", path)
	}
	return nil
}

// tokenFile is a token read from a file, again when the file changes (a
// rotated Kubernetes Secret).
type tokenFile struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	tok     string
}

func (t *tokenFile) value() (string, error) {
	fi, err := os.Stat(t.path)
	if err != nil {
		return "", fmt.Errorf("push token file: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != "" && fi.ModTime().Equal(t.modTime) {
		return t.tok, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("push token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("push token file %s is empty", t.path)
	}
	t.tok, t.modTime = tok, fi.ModTime()
	return tok, nil
}
