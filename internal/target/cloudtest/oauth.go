// STAND-IN for Google's OAuth2 token endpoint: it grants access tokens for
// a generated service-account key, verifying the signed JWT assertion the
// real golang.org/x/oauth2/google flow sends. Not the real service.

package cloudtest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	cloudPlatform  = "https://www.googleapis.com/auth/cloud-platform"
)

type oauthServer struct {
	url     string
	email   string
	keyID   string
	pub     *rsa.PublicKey
	keyJSON []byte
	token   string

	mu      sync.Mutex
	ttl     time.Duration
	expires time.Time // of the last token granted
	grants  int
}

func newOAuthServer(t testing.TB, project string) *oauthServer {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s := &oauthServer{
		email: "image-swapper@" + project + ".iam.gserviceaccount.com",
		keyID: randomString(40),
		pub:   &priv.PublicKey,
		token: "ya29.standin-" + randomString(32),
		ttl:   time.Hour,
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serveToken))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/token"
	s.keyJSON, err = json.MarshalIndent(map[string]string{
		"type":           "service_account",
		"project_id":     project,
		"private_key_id": s.keyID,
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   s.email,
		"client_id":      "100000000000000000001",
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      s.url,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *oauthServer) setTTL(d time.Duration) { s.mu.Lock(); s.ttl = d; s.mu.Unlock() }

func (s *oauthServer) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.grants }

func (s *oauthServer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		oauthError(w, http.StatusNotFound, "invalid_request", "POST /token")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if g := r.PostForm.Get("grant_type"); g != jwtBearerGrant {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+g)
		return
	}
	if err := s.verifyAssertion(r.PostForm.Get("assertion")); err != "" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", err)
		return
	}
	s.mu.Lock()
	s.grants++
	s.expires = time.Now().Add(s.ttl)
	ttl := s.ttl
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": s.token, "expires_in": int(ttl.Seconds()), "token_type": "Bearer",
	})
}

// verifyAssertion checks a JWT the way Google's endpoint does: RS256 by the
// key's id, issued by the account, for this endpoint, asking a scope, and
// current. It returns what is wrong, or "".
func (s *oauthServer) verifyAssertion(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "Invalid JWT: not header.claims.signature"
	}
	var head struct{ Alg, Typ, Kid string }
	var claims struct {
		Iss, Scope, Aud, Sub string
		Iat, Exp             int64
	}
	if decodeSegment(parts[0], &head) != nil || decodeSegment(parts[1], &claims) != nil {
		return "Invalid JWT: segments are not base64url JSON"
	}
	if head.Alg != "RS256" || head.Kid != s.keyID {
		return "Invalid JWT Signature."
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "Invalid JWT Signature."
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(s.pub, crypto.SHA256, sum[:], sig) != nil {
		return "Invalid JWT Signature."
	}
	now := time.Now().Unix()
	switch {
	case claims.Iss != s.email:
		return "Invalid JWT: iss is not the service account"
	case claims.Aud != s.url:
		return "Invalid JWT: Failed audience check."
	case !strings.Contains(" "+claims.Scope+" ", " "+cloudPlatform+" "):
		return "Invalid JWT: no cloud-platform scope"
	case claims.Iat > now+300 || claims.Exp < now || claims.Exp-claims.Iat > 3600:
		return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
	}
	return ""
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func oauthError(w http.ResponseWriter, code int, kind, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": kind, "error_description": desc})
}

// valid tells whether tok is a granted, unexpired access token.
func (s *oauthServer) valid(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants > 0 && tok == s.token && time.Now().Before(s.expires)
}

// checkBearer refuses gRPC calls without a valid bearer token, as Google
// APIs do.
func (s *oauthServer) checkBearer(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") || !s.valid(strings.TrimPrefix(auth[0], "Bearer ")) {
		return nil, status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. "+
			"Expected OAuth 2 access token, login cookie or other valid authentication credential.")
	}
	return next(ctx, req)
}
