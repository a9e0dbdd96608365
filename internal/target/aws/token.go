package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
)

// renewAt is the share of a registry token's lifetime after which it is
// renewed: 12-hour tokens are renewed after 9.6 hours, long before a pull
// could fail at the boundary.
const renewAt = 0.8

// tokenCache holds one GetAuthorizationToken result and renews it.
type tokenCache struct {
	client  *ecr.Client
	log     *slog.Logger
	mu      sync.Mutex
	auth    *authn.Basic
	renew   time.Time // when to fetch a new token
	expires time.Time
}

func newTokenCache(c *ecr.Client, log *slog.Logger) *tokenCache {
	return &tokenCache{client: c, log: log}
}

// get returns registry credentials, fetching them when due. A failed
// renewal keeps serving the old token while it is still valid.
func (c *tokenCache) get(ctx context.Context) (*authn.Basic, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.auth != nil && now.Before(c.renew) {
		return c.auth, nil
	}
	auth, expires, err := c.fetch(ctx)
	if err != nil {
		if c.auth != nil && now.Before(c.expires) {
			c.log.Warn("ECR token renewal failed, using the current token", "expires", c.expires, "error", err)
			return c.auth, nil
		}
		return nil, err
	}
	c.auth, c.expires = auth, expires
	c.renew = now.Add(time.Duration(float64(expires.Sub(now)) * renewAt))
	c.log.Debug("ECR registry token fetched", "expires", expires)
	return auth, nil
}

func (c *tokenCache) fetch(ctx context.Context) (*authn.Basic, time.Time, error) {
	out, err := c.client.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("ECR GetAuthorizationToken: %w", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return nil, time.Time{}, errors.New("ECR GetAuthorizationToken: no authorization data in the answer")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(*d.AuthorizationToken)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("ECR authorization token: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, time.Time{}, errors.New("ECR authorization token is not USER:PASSWORD")
	}
	expires := time.Now().Add(time.Hour) // ECR always says; be safe if it does not
	if d.ExpiresAt != nil {
		expires = *d.ExpiresAt
	}
	return &authn.Basic{Username: user, Password: pass}, expires, nil
}

// Authenticator gives push and pull rights to the registry.
func (t *Target) Authenticator(ctx context.Context) (authn.Authenticator, error) {
	a, err := t.token.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws target %s: %w", t.mapper.Host, err)
	}
	return a, nil
}
