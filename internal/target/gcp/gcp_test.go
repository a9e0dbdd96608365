package gcp_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/artifactregistry/apiv1/artifactregistrypb"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/cloudtest"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/gcp"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/targettest"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

var _ target.Target = (*gcp.Target)(nil)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// standIn starts the GCP stand-in with a DOCKER repository "mirror" and
// its key file as the Application Default Credentials.
func standIn(t *testing.T) *cloudtest.GCP {
	s := cloudtest.NewGCP(t, cloudtest.GCPOptions{})
	s.AddRepository("mirror", artifactregistrypb.Repository_DOCKER)
	s.UseKeyFile(t)
	return s
}

func TestHostAndMapper(t *testing.T) {
	s := standIn(t)
	if got := registry.ArtifactRegistryHost("us-central1"); got != "us-central1-docker.pkg.dev" {
		t.Fatalf("Host = %s", got)
	}
	tg, err := gcp.New(ctx(t), s.Config("mirror"), s.TargetOptions())
	if err != nil {
		t.Fatal(err)
	}
	if want := s.RegistryAddr + "/test-project/mirror"; tg.Mapper().Base() != want {
		t.Fatalf("Base() = %s, want %s", tg.Mapper().Base(), want)
	}
	o := s.TargetOptions()
	o.RegistryHost = ""
	tg, err = gcp.New(ctx(t), s.Config("mirror"), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := "europe-west1-docker.pkg.dev/test-project/mirror"; tg.Mapper().Base() != want {
		t.Fatalf("Base() = %s, want %s", tg.Mapper().Base(), want)
	}
}

func TestTokenFlow(t *testing.T) {
	s := standIn(t)
	tg, err := target.New(ctx(t), target.Spec{Kind: "gcp", GCP: s.Config("mirror")}, target.WithGCP(s.TargetOptions()))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.GetRepositoryCalls(), []string{"projects/test-project/locations/europe-west1/repositories/mirror"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("GetRepository calls %v, want %v", got, want)
	}
	for range 3 {
		a, err := tg.Authenticator(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != "oauth2accesstoken" || cfg.Password != s.AccessToken() {
			t.Fatalf("registry login %s/%s, want oauth2accesstoken and the granted token", cfg.Username, cfg.Password)
		}
	}
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("%d token grants for one fresh token, want 1", n)
	}
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	s := standIn(t)
	s.SetTokenTTL(4 * time.Second)
	o := s.TargetOptions()
	o.RefreshBefore = 2 * time.Second // due two seconds after the grant
	tg, err := gcp.New(ctx(t), s.Config("mirror"), o)
	if err != nil {
		t.Fatal(err)
	}
	a, err := tg.Authenticator(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authorization(); err != nil {
		t.Fatal(err)
	}
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("%d token grants, want 1", n)
	}
	time.Sleep(2300 * time.Millisecond)
	// The same authenticator asks again: a copy in progress gets the new token.
	if _, err := a.Authorization(); err != nil {
		t.Fatal(err)
	}
	if n := s.TokenRequests(); n != 2 {
		t.Fatalf("%d token grants after the refresh point, want 2", n)
	}
}

func TestRepositoryCheck(t *testing.T) {
	s := standIn(t)
	s.AddRepository("maven", artifactregistrypb.Repository_MAVEN)
	for _, c := range []struct{ repo, want string }{
		{"missing", "repositories/missing does not exist; create it with `gcloud artifacts repositories create missing --repository-format=docker"},
		{"maven", "repositories/maven has format MAVEN, want DOCKER"},
	} {
		_, err := target.New(ctx(t), target.Spec{Kind: "gcp", GCP: s.Config(c.repo)}, target.WithGCP(s.TargetOptions()))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("repository %s: want error containing %q, got %v", c.repo, c.want, err)
		}
	}
}

func TestNoCredentials(t *testing.T) {
	s := standIn(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", t.TempDir()+"/missing.json")
	_, err := gcp.New(ctx(t), s.Config("mirror"), s.TargetOptions())
	if err == nil || !strings.Contains(err.Error(), "Application Default Credentials") {
		t.Fatalf("want a clear credentials error, got %v", err)
	}
}

func TestSuite(t *testing.T) {
	targettest.Run(t, func(t *testing.T) targettest.Harness {
		s := standIn(t)
		tg, err := target.New(ctx(t), target.Spec{Kind: "gcp", GCP: s.Config("mirror")}, target.WithGCP(s.TargetOptions()))
		if err != nil {
			t.Fatal(err)
		}
		return targettest.Harness{Target: tg, Kind: "gcp", Private: true}
	})
}

// TestMirrorThenPull copies an image with the copy engine into the
// stand-in's registry, then pulls it with the access token.
func TestMirrorThenPull(t *testing.T) {
	s := standIn(t)
	src := registryproc.Start(t, registryproc.Options{})
	want := images.Push(t, src.Addr+"/team/app:1", images.Index(t, 2048, 2, "linux/amd64", "linux/arm64"))
	tg, err := target.New(ctx(t), target.Spec{Kind: "gcp", GCP: s.Config("mirror")}, target.WithGCP(s.TargetOptions()))
	if err != nil {
		t.Fatal(err)
	}
	sources, err := auth.NewSources([]auth.Source{{Registry: src.Addr, Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := imageref.Parse(src.Addr + "/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := mirror.New(tg, mirror.Options{Sources: sources}).Copy(ctx(t), mirror.Request{Source: ref})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want {
		t.Fatalf("copied %s, want %s", res.Digest, want)
	}
	port := src.Addr[strings.LastIndex(src.Addr, ":")+1:]
	pulled, err := name.ParseReference(s.RegistryAddr+"/test-project/mirror/127.0.0.1_"+port+"/team/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(pulled, remote.WithContext(ctx(t)))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != 401 {
		t.Fatalf("anonymous pull: want 401, got %v", err)
	}
	idx, err := remote.Index(pulled, remote.WithContext(ctx(t)),
		remote.WithAuth(&authn.Basic{Username: "oauth2accesstoken", Password: s.AccessToken()}))
	if err != nil {
		t.Fatalf("pull with the access token: %v", err)
	}
	if d, _ := idx.Digest(); d != want {
		t.Fatalf("pulled %s, want %s", d, want)
	}
}

// TestKeychain authenticates pulls from a gcp source registry.
func TestKeychain(t *testing.T) {
	s := standIn(t)
	kc, err := target.SourceKeychain(ctx(t), target.CloudSources{GAR: []string{s.Location}}, target.WithGCP(s.TargetOptions()))
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := name.NewRepository(s.RegistryAddr+"/test-project/mirror/app", name.Insecure)
	a, err := kc.Resolve(repo)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil || cfg.Username != "oauth2accesstoken" || cfg.Password != s.AccessToken() {
		t.Fatalf("gcp source login %+v, %v", cfg, err)
	}
	other, _ := name.NewRepository("quay.io/x/y")
	if a, err := kc.Resolve(other); err != nil || a != authn.Anonymous {
		t.Fatalf("another host: %v, %v; want anonymous", a, err)
	}
}

// As the original (its Artifact Registry target logged in to any
// *-docker.pkg.dev source), the token goes to every Artifact Registry host
// when the target is gcp, not only to sources declared with type gcp. With
// no Google credentials in use, those hosts stay anonymous.
func TestKeychainAnyArtifactRegistryHost(t *testing.T) {
	s := standIn(t)
	other, _ := name.NewRepository("us-docker.pkg.dev/another-project/images/app")
	kc, err := target.SourceKeychain(ctx(t), target.CloudSources{AnyGAR: true}, target.WithGCP(s.TargetOptions()))
	if err != nil {
		t.Fatal(err)
	}
	a, err := kc.Resolve(other)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := a.Authorization(); err != nil || cfg.Username != "oauth2accesstoken" || cfg.Password != s.AccessToken() {
		t.Fatalf("*-docker.pkg.dev source with a gcp target: %+v, %v", cfg, err)
	}
	quay, _ := name.NewRepository("quay.io/x/y")
	if a, err := kc.Resolve(quay); err != nil || a != authn.Anonymous {
		t.Fatalf("another host: %v, %v; want anonymous", a, err)
	}
	kc, err = target.SourceKeychain(ctx(t), target.CloudSources{}, target.WithGCP(s.TargetOptions()))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := kc.Resolve(other); err != nil || a != authn.Anonymous {
		t.Fatalf("no gcp target or source: %v, %v; want anonymous", a, err)
	}
}

// The start-up check needs artifactregistry.repositories.get, which the
// original never asked for: without it, a warning, and the target works.
func TestStartWithoutRepositoriesGet(t *testing.T) {
	s := standIn(t)
	s.DenyRepositoryGet("mirror")
	var logs strings.Builder
	o := s.TargetOptions()
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	tg, err := gcp.New(ctx(t), s.Config("mirror"), o)
	if err != nil {
		t.Fatalf("refused to start without repositories.get: %v", err)
	}
	if !strings.Contains(logs.String(), "no permission to read the Artifact Registry repository") {
		t.Errorf("no warning: %q", logs.String())
	}
	// Pushes need no repositories.get.
	a, err := tg.Authenticator(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(s.RegistryAddr+"/test-project/mirror/docker.io/library/app:1", tg.NameOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, images.Image(t, 512, 1, "linux/amd64"), remote.WithAuth(a), remote.WithTransport(tg.Transport())); err != nil {
		t.Fatalf("push without repositories.get: %v", err)
	}
}
