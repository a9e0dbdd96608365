// STAND-IN for the Artifact Registry gRPC API: GetRepository only, behind
// the bearer-token check of oauth.go. Not the real service.

package cloudtest

import (
	"context"
	"regexp"

	"cloud.google.com/go/artifactregistry/apiv1/artifactregistrypb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var repositoryName = regexp.MustCompile(`^projects/([^/]+)/locations/([^/]+)/repositories/([^/]+)$`)

type artifactRegistry struct {
	artifactregistrypb.UnimplementedArtifactRegistryServer
	g *GCP
}

func (a *artifactRegistry) GetRepository(_ context.Context, req *artifactregistrypb.GetRepositoryRequest) (*artifactregistrypb.Repository, error) {
	m := repositoryName.FindStringSubmatch(req.GetName())
	if m == nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid resource name %q: want projects/*/locations/*/repositories/*", req.GetName())
	}
	g := a.g
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gets = append(g.gets, req.GetName())
	if g.denied[m[3]] {
		return nil, status.Errorf(codes.PermissionDenied, "Permission 'artifactregistry.repositories.get' denied on resource '%s' (or it may not exist).", req.GetName())
	}
	format, ok := g.repos[m[3]]
	if m[1] != g.ProjectID || m[2] != g.Location || !ok {
		return nil, status.Errorf(codes.NotFound, "Requested entity was not found.")
	}
	return &artifactregistrypb.Repository{
		Name:       req.GetName(),
		Format:     format,
		Mode:       artifactregistrypb.Repository_STANDARD_REPOSITORY,
		CreateTime: timestamppb.Now(),
		UpdateTime: timestamppb.Now(),
	}, nil
}
