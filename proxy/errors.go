package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// Error codes of the distribution spec (and distribution's UNKNOWN).
const (
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeNameUnknown     = "NAME_UNKNOWN"
	codeNameInvalid     = "NAME_INVALID"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeDenied          = "DENIED"
	codeUnauthorized    = "UNAUTHORIZED"
	codeUnsupported     = "UNSUPPORTED"
	codeTooMany         = "TOOMANYREQUESTS"
	codeUnknown         = "UNKNOWN"
)

// httpError is an answer in the spec's error format. Handlers return one,
// or an error asHTTPError maps to one; ServeHTTP writes it.
type httpError struct {
	status     int
	code       string
	msg        string
	retryAfter string // passed on from a source that asked clients to wait
	challenge  string // WWW-Authenticate, for a 401
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func newError(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// basicChallenge is a 401 that asks for Basic credentials.
func basicChallenge(code, format string, args ...any) *httpError {
	e := newError(http.StatusUnauthorized, code, format, args...)
	e.challenge = `Basic realm="` + realm + `"`
	return e
}

// realm names the proxy in its Basic challenges.
const realm = "k8s-image-swapper"

// writeError writes e as {"errors":[{"code":..,"message":..}]}. A HEAD
// answer has no body, as the spec says.
func writeError(w http.ResponseWriter, r *http.Request, e *httpError) {
	type item struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []item `json:"errors"`
	}{[]item{{e.code, e.msg}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if e.retryAfter != "" {
		h.Set("Retry-After", e.retryAfter)
	}
	if e.challenge != "" {
		h.Set("WWW-Authenticate", e.challenge)
	}
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// notFoundCode is the spec's code for content of kind that is not there.
func notFoundCode(kind string) string {
	switch kind {
	case registry.Manifests:
		return codeManifestUnknown
	case registry.Blobs:
		return codeBlobUnknown
	}
	return codeNameUnknown
}

// asHTTPError turns any error into what the client is told.
func asHTTPError(err error, notFoundCode string) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return fromUpstream(ue, notFoundCode)
	}
	if errors.Is(err, upstream.ErrTimeout) {
		return newError(http.StatusGatewayTimeout, codeUnknown, "%v", err)
	}
	if errors.Is(err, upstream.ErrUnavailable) {
		return newError(http.StatusServiceUnavailable, codeUnknown, "%v", err)
	}
	return newError(http.StatusBadGateway, codeUnknown, "%v", err)
}

// fromUpstream maps a registry's answer onto the proxy's. Auth failures
// become 403 without a challenge: the client cannot log in to the proxy,
// and containerd moves on to the next host (the origin, with its own
// credentials) on any 4xx or 5xx.
func fromUpstream(e *upstream.Error, notFoundCode string) *httpError {
	switch {
	case e.Status == http.StatusNotFound:
		return newError(http.StatusNotFound, notFoundCode, "%s not found at %s", kindWord(notFoundCode), e.Registry)
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return newError(http.StatusForbidden, codeDenied, "%s %s denied access (%d)", e.Role, e.Registry, e.Status)
	case e.Status == http.StatusTooManyRequests:
		he := newError(http.StatusTooManyRequests, codeTooMany, "%s %s asks to slow down", e.Role, e.Registry)
		he.retryAfter = e.RetryAfter
		return he
	default:
		return newError(http.StatusBadGateway, codeUnknown, "%v", e)
	}
}

func kindWord(code string) string {
	switch code {
	case codeBlobUnknown:
		return "blob"
	case codeManifestUnknown:
		return "manifest"
	}
	return "repository"
}

// isNotFound tells whether err says the content is not there.
func isNotFound(err error) bool {
	var he *httpError
	return upstream.IsNotFound(err) || errors.As(err, &he) && he.status == http.StatusNotFound
}

// sourceError is why the source could not serve ex. A source read from the
// path rather than given by ns could not be asked: then the answer is this
// registry's "not found".
func sourceError(ex *exchange, pl plan, err error) error {
	code := notFoundCode(ex.call.Kind)
	he := asHTTPError(err, code)
	if pl.implicit && he.status >= 500 {
		return newError(http.StatusNotFound, code, "not in this registry, and %s could not be asked: %v", pl.src.Registry, err)
	}
	return he
}
