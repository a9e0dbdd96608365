package gcp

import (
	"context"
	"fmt"
	"time"

	artifactregistry "cloud.google.com/go/artifactregistry/apiv1"
	"cloud.google.com/go/artifactregistry/apiv1/artifactregistrypb"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// checkTimeout bounds the start-up check, so an unreachable API fails
// start-up with an error instead of hanging it.
const checkTimeout = 30 * time.Second

// repositoryName is the API name of the configured repository.
func (t *Target) repositoryName() string {
	return fmt.Sprintf("projects/%s/locations/%s/repositories/%s", t.cfg.ProjectID, t.cfg.Location, t.cfg.RepositoryID)
}

// Check makes sure the repository exists and is a DOCKER repository: users
// create it by hand, and a typo would otherwise surface as failed pushes.
// An identity without artifactregistry.repositories.get (which the original
// never needed) is warned about, and the start goes on.
func (t *Target) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	client, err := newAPIClient(ctx, t.tokens, t.opts)
	if err != nil {
		return fmt.Errorf("gcp target: Artifact Registry client: %w", err)
	}
	defer client.Close()
	repo := t.repositoryName()
	r, err := client.GetRepository(ctx, &artifactregistrypb.GetRepositoryRequest{Name: repo})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return fmt.Errorf("gcp target: Artifact Registry repository %s does not exist; create it with "+
			"`gcloud artifacts repositories create %s --repository-format=docker --location=%s --project=%s`: %w",
			repo, t.cfg.RepositoryID, t.cfg.Location, t.cfg.ProjectID, err)
	case codes.PermissionDenied:
		t.opts.Logger.Warn("gcp target: no permission to read the Artifact Registry repository, so it is not checked "+
			"(artifactregistry.repositories.get, in roles/artifactregistry.reader and writer); going on",
			"repository", repo, "error", err)
		return nil
	case codes.Unauthenticated:
		return fmt.Errorf("gcp target: Artifact Registry refused the credentials for %s: %w", repo, err)
	default:
		return fmt.Errorf("gcp target: get Artifact Registry repository %s: %w", repo, err)
	}
	if r.GetFormat() != artifactregistrypb.Repository_DOCKER {
		return fmt.Errorf("gcp target: Artifact Registry repository %s has format %s, want DOCKER", repo, r.GetFormat())
	}
	return nil
}

func newAPIClient(ctx context.Context, ts oauth2.TokenSource, o Options) (*artifactregistry.Client, error) {
	if !o.PlaintextAPI {
		opts := []option.ClientOption{option.WithTokenSource(ts)}
		if o.Endpoint != "" {
			opts = append(opts, option.WithEndpoint(o.Endpoint))
		}
		return artifactregistry.NewClient(ctx, opts...)
	}
	// The library sends no credentials without TLS; send the bearer ourselves.
	return artifactregistry.NewClient(ctx,
		option.WithEndpoint(o.Endpoint),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithGRPCDialOption(grpc.WithPerRPCCredentials(plaintextBearer{ts})),
	)
}

// plaintextBearer puts the access token on calls over plain gRPC.
type plaintextBearer struct{ ts oauth2.TokenSource }

func (b plaintextBearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := b.ts.Token()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok.AccessToken}, nil
}

func (plaintextBearer) RequireTransportSecurity() bool { return false }
