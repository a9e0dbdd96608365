// STAND-IN for Google Cloud: an OAuth2 token endpoint for a generated
// service-account key, a gRPC Artifact Registry service (GetRepository
// only) and a real docker-registry as the Artifact Registry data plane.
// Not the real services.

package cloudtest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/artifactregistry/apiv1/artifactregistrypb"
	"google.golang.org/grpc"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/gcp"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// GCPOptions configure the GCP stand-in; zero values take the defaults.
type GCPOptions struct {
	ProjectID string // default test-project
	Location  string // default europe-west1
}

// GCP is the stand-in for one project's OAuth2 tokens, Artifact Registry
// API and docker registry.
type GCP struct {
	ProjectID string
	Location  string
	// KeyFile is a service-account key whose token_uri is TokenURL.
	KeyFile  string
	TokenURL string
	// Endpoint is the plain-gRPC Artifact Registry API (HOST:PORT).
	Endpoint string
	// RegistryAddr is the data plane (HOST:PORT, plain HTTP); it takes
	// oauth2accesstoken and the access token, and refuses paths outside
	// the project's DOCKER repositories.
	RegistryAddr string
	Registry     *registryproc.Registry

	oauth *oauthServer

	mu     sync.Mutex
	repos  map[string]artifactregistrypb.Repository_Format // by repository ID
	gets   []string                                        // GetRepository names asked for
	denied map[string]bool                                 // repository IDs whose get is refused
}

// NewGCP starts the stand-in until the test ends.
func NewGCP(t testing.TB, o GCPOptions) *GCP {
	t.Helper()
	if o.ProjectID == "" {
		o.ProjectID = "test-project"
	}
	if o.Location == "" {
		o.Location = "europe-west1"
	}
	g := &GCP{ProjectID: o.ProjectID, Location: o.Location, repos: map[string]artifactregistrypb.Repository_Format{},
		denied: map[string]bool{}}

	g.oauth = newOAuthServer(t, o.ProjectID)
	g.TokenURL = g.oauth.url
	g.KeyFile = filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(g.KeyFile, g.oauth.keyJSON, 0o600); err != nil {
		t.Fatal(err)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(g.oauth.checkBearer))
	artifactregistrypb.RegisterArtifactRegistryServer(srv, &artifactRegistry{g: g})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	g.Endpoint = lis.Addr().String()

	g.Registry = registryproc.Start(t, registryproc.Options{Htpasswd: htpasswd(t, "oauth2accesstoken", g.oauth.token)})
	front := newDataPlane(g.Registry, "oauth2accesstoken", g.oauth.token, g.dockerPath)
	t.Cleanup(front.Close)
	g.RegistryAddr = strings.TrimPrefix(front.URL, "http://")
	return g
}

// AddRepository creates an Artifact Registry repository.
func (g *GCP) AddRepository(id string, format artifactregistrypb.Repository_Format) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.repos[id] = format
}

// DenyRepositoryGet refuses GetRepository of a repository, as Artifact
// Registry does for an identity that may push to it without
// artifactregistry.repositories.get.
func (g *GCP) DenyRepositoryGet(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.denied[id] = true
}

// UseKeyFile makes the key file the Application Default Credentials.
func (g *GCP) UseKeyFile(t testing.TB) {
	t.Helper()
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", g.KeyFile)
	t.Setenv("HOME", t.TempDir()) // no gcloud well-known file to fall back on
}

// Config is the Artifact Registry target of repository id.
func (g *GCP) Config(id string) gcp.Repository {
	return gcp.Repository{Location: g.Location, ProjectID: g.ProjectID, RepositoryID: id}
}

// TargetOptions point the gcp target at the stand-in.
func (g *GCP) TargetOptions() gcp.Options {
	return gcp.Options{Endpoint: g.Endpoint, PlaintextAPI: true, RegistryHost: g.RegistryAddr, Insecure: true}
}

// AccessToken is the token the token endpoint hands out.
func (g *GCP) AccessToken() string { return g.oauth.token }

// SetTokenTTL sets the lifetime of access tokens (an hour by default).
func (g *GCP) SetTokenTTL(d time.Duration) { g.oauth.setTTL(d) }

// TokenRequests counts the token grants.
func (g *GCP) TokenRequests() int { return g.oauth.count() }

// GetRepositoryCalls are the repository names GetRepository was asked for
// with a valid token.
func (g *GCP) GetRepositoryCalls() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.gets...)
}

// dockerPath tells whether an image path lies in a DOCKER repository of
// the project: PROJECT/REPOSITORY/IMAGE.
func (g *GCP) dockerPath(path string) bool {
	parts := strings.SplitN(path, "/", 3)
	if len(parts) < 3 || parts[0] != g.ProjectID {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.repos[parts[1]]
	return ok && f == artifactregistrypb.Repository_DOCKER
}
