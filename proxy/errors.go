package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Error codes of the distribution spec (and distribution's UNKNOWN).
const (
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeNameUnknown     = "NAME_UNKNOWN"
	codeNameInvalid     = "NAME_INVALID"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeDenied          = "DENIED"
	codeUnsupported     = "UNSUPPORTED"
	codeTooMany         = "TOOMANYREQUESTS"
	codeUnknown         = "UNKNOWN"
)

// httpError is an answer in the spec's error format.
type httpError struct {
	status     int
	code       string
	msg        string
	retryAfter string // passed on from a source that asked clients to wait
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func newError(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

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
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// asHTTPError turns any error into what the client is told.
func asHTTPError(err error, notFoundCode string) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.toClient(notFoundCode)
	}
	if errors.Is(err, errTimeout) {
		return newError(http.StatusGatewayTimeout, codeUnknown, "%v", err)
	}
	if errors.Is(err, errUnavailable) {
		return newError(http.StatusServiceUnavailable, codeUnknown, "%v", err)
	}
	return newError(http.StatusBadGateway, codeUnknown, "%v", err)
}

// upstreamError is a registry's non-success answer.
type upstreamError struct {
	role       string // target or source
	registry   string
	status     int
	retryAfter string
	body       string // first bytes of the registry's error body
}

func (e *upstreamError) Error() string {
	return fmt.Sprintf("%s %s answered %d %s", e.role, e.registry, e.status, e.body)
}

func (e *upstreamError) notFound() bool { return e.status == http.StatusNotFound }

// toClient maps an upstream answer onto the proxy's. Auth failures become
// 403 without a challenge: the client cannot log in to the proxy, and
// containerd moves on to the next host (the origin, with its own
// credentials) on any 4xx or 5xx.
func (e *upstreamError) toClient(notFoundCode string) *httpError {
	switch {
	case e.status == http.StatusNotFound:
		return newError(http.StatusNotFound, notFoundCode, "%s not found at %s", kindWord(notFoundCode), e.registry)
	case e.status == http.StatusUnauthorized || e.status == http.StatusForbidden:
		return newError(http.StatusForbidden, codeDenied, "%s %s denied access (%d)", e.role, e.registry, e.status)
	case e.status == http.StatusTooManyRequests:
		he := newError(http.StatusTooManyRequests, codeTooMany, "%s %s asks to slow down", e.role, e.registry)
		he.retryAfter = e.retryAfter
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

func isNotFound(err error) bool {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.notFound()
	}
	var he *httpError
	return errors.As(err, &he) && he.status == http.StatusNotFound
}

// errTimeout marks an upstream that did not answer within the upstream timeout.
var errTimeout = errors.New("upstream timed out")

// sourceError tells the client why the source could not serve.
func sourceError(ex *exchange, pl plan, err error, notFoundCode string) {
	he := asHTTPError(err, notFoundCode)
	if pl.implicit && he.status >= 500 {
		he = newError(http.StatusNotFound, notFoundCode, "not in this registry, and %s could not be asked: %v",
			pl.src.registry, err)
	}
	writeError(ex.w, ex.r, he)
}
