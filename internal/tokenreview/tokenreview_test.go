package tokenreview

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const aud = "k8s-image-swapper-hub"

// apiServer answers TokenReviews as the API server would for these tokens
// (the real one is in e2e's TestHubAPICallers), and counts them.
func apiServer(t *testing.T, fail *bool) (*fake.Clientset, *int) {
	c := fake.NewClientset()
	n := 0
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n++
		if *fail {
			return true, nil, errors.New("connection refused")
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authv1.TokenReview)
		if len(tr.Spec.Audiences) != 1 || tr.Spec.Audiences[0] != aud {
			t.Errorf("review asked for audiences %v, want [%s]", tr.Spec.Audiences, aud)
		}
		switch tr.Spec.Token {
		case "webhook":
			tr.Status = authv1.TokenReviewStatus{Authenticated: true, Audiences: []string{aud},
				User: authv1.UserInfo{Username: "system:serviceaccount:swapper:swapper"}}
		case "other-audience":
			tr.Status = authv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"https://kubernetes.default.svc"},
				User: authv1.UserInfo{Username: "system:serviceaccount:swapper:swapper"}}
		case "intruder":
			tr.Status = authv1.TokenReviewStatus{Authenticated: true, Audiences: []string{aud},
				User: authv1.UserInfo{Username: "system:serviceaccount:apps:default"}}
		default:
			tr.Status = authv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return true, tr, nil
	})
	return c, &n
}

func TestRequire(t *testing.T) {
	fail := false
	c, reviews := apiServer(t, &fail)
	v := New(c.AuthenticationV1().TokenReviews(), aud, []string{"system:serviceaccount:swapper:swapper"}, slog.New(slog.DiscardHandler))
	served := 0
	h := v.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))
	ask := func(auth string) (int, string) {
		r := httptest.NewRequest(http.MethodPost, "/hub/v1/copy", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var body struct{ Error string }
		if w.Code != http.StatusOK {
			b, _ := io.ReadAll(w.Body)
			if err := json.Unmarshal(b, &body); err != nil || body.Error == "" {
				t.Errorf("%q: %d with body %q, want {\"error\": ...}", auth, w.Code, b)
			}
			if w.Code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%q: 401 without a challenge", auth)
			}
		}
		return w.Code, body.Error
	}
	for _, c := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Basic d2ViaG9vaw==", http.StatusUnauthorized},
		{"Bearer forged", http.StatusUnauthorized},
		{"Bearer other-audience", http.StatusUnauthorized},
		{"Bearer intruder", http.StatusForbidden},
		{"Bearer webhook", http.StatusOK},
		{"bearer webhook", http.StatusOK},
	} {
		if got, msg := ask(c.auth); got != c.want {
			t.Errorf("Authorization %q: %d (%s), want %d", c.auth, got, msg, c.want)
		}
	}
	if served != 2 {
		t.Errorf("next served %d requests, want the 2 with the webhook's token", served)
	}
	// 4 tokens reviewed; the second "webhook" came from the cache, and no
	// review was asked for no token or a Basic one.
	if *reviews != 4 {
		t.Errorf("%d reviews, want 4", *reviews)
	}

	// The API server down: 503, and the answer is not kept.
	fail = true
	if got, _ := ask("Bearer new"); got != http.StatusServiceUnavailable {
		t.Errorf("API server down: %d, want 503", got)
	}
	fail = false
	if got, _ := ask("Bearer new"); got != http.StatusUnauthorized {
		t.Errorf("API server back: %d, want 401 for an invalid token", got)
	}
	if got, _ := ask("Bearer webhook"); got != http.StatusOK || *reviews != 6 {
		t.Errorf("cached token: %d after %d reviews, want 200 after 6", got, *reviews)
	}
}
