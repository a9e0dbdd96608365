package gcp

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// cloudPlatform is the scope registry and API access need.
const cloudPlatform = "https://www.googleapis.com/auth/cloud-platform"

// defaultRefreshBefore renews access tokens (one hour long) five minutes
// before they expire, so a pull never starts with a token about to lapse.
const defaultRefreshBefore = 5 * time.Minute

// tokenSource is the Application Default Credentials (a key file through
// GOOGLE_APPLICATION_CREDENTIALS, Workload Identity's metadata server, ...)
// as a cached source that refreshes before expiry.
func tokenSource(ctx context.Context, o Options) (oauth2.TokenSource, error) {
	early := o.RefreshBefore
	if early <= 0 {
		early = defaultRefreshBefore
	}
	// The token source outlives the caller's context (often a start-up deadline).
	ctx = context.WithoutCancel(ctx)
	creds, err := google.FindDefaultCredentialsWithParams(ctx, google.CredentialsParams{
		Scopes:            []string{cloudPlatform},
		EarlyTokenRefresh: early, // honoured for the metadata server only
	})
	if err != nil {
		return nil, fmt.Errorf("gcp: find Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS or Workload Identity): %w", err)
	}
	// A service-account key's source caches with a fixed 10-second margin;
	// rebuild it so the early refresh applies to it too.
	if jwt, err := google.JWTConfigFromJSON(creds.JSON, cloudPlatform); err == nil {
		return oauth2.ReuseTokenSourceWithExpiry(nil, jwt.TokenSource(ctx), early), nil
	}
	return oauth2.ReuseTokenSourceWithExpiry(nil, creds.TokenSource, early), nil
}

// registryUser is the user name registries take with an access token.
const registryUser = "oauth2accesstoken"

// tokenAuth asks its source on every use, so a registry re-authenticating
// mid-copy gets a current token.
type tokenAuth struct{ ts oauth2.TokenSource }

func (a tokenAuth) Authorization() (*authn.AuthConfig, error) {
	tok, err := a.ts.Token()
	if err != nil {
		return nil, fmt.Errorf("gcp access token: %w", err)
	}
	return &authn.AuthConfig{Username: registryUser, Password: tok.AccessToken}, nil
}
