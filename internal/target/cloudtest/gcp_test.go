package cloudtest_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"cloud.google.com/go/artifactregistry/apiv1/artifactregistrypb"
	"golang.org/x/oauth2/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/cloudtest"
)

func TestTokenEndpointVerifiesTheAssertion(t *testing.T) {
	s := cloudtest.NewGCP(t, cloudtest.GCPOptions{})
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(other)
	forged := &jwt.Config{
		Email:      "image-swapper@test-project.iam.gserviceaccount.com",
		PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		Scopes:     []string{"https://www.googleapis.com/auth/cloud-platform"},
		TokenURL:   s.TokenURL,
	}
	if _, err := forged.TokenSource(context.Background()).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("assertion signed by another key: want invalid_grant, got %v", err)
	}
	if n := s.TokenRequests(); n != 0 {
		t.Fatalf("%d grants for a forged assertion", n)
	}
}

func TestArtifactRegistryChecksTheToken(t *testing.T) {
	s := cloudtest.NewGCP(t, cloudtest.GCPOptions{})
	s.AddRepository("mirror", artifactregistrypb.Repository_DOCKER)
	conn, err := grpc.NewClient(s.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := artifactregistrypb.NewArtifactRegistryClient(conn)
	name := "projects/test-project/locations/europe-west1/repositories/mirror"
	get := func(ctx context.Context, n string) error {
		_, err := c.GetRepository(ctx, &artifactregistrypb.GetRepositoryRequest{Name: n})
		return err
	}
	if err := get(context.Background(), name); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: want Unauthenticated, got %v", err)
	}
	bearer := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+s.AccessToken())
	if err := get(bearer, name); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a token never granted: want Unauthenticated, got %v", err)
	}
}
