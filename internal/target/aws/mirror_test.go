package aws_test

import (
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/aws"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/cloudtest"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/targettest"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

func TestSuite(t *testing.T) {
	targettest.Run(t, func(t *testing.T) targettest.Harness {
		s, _ := standIn(t)
		c := s.Config()
		c.Prefix = "mirror"
		c.Repositories.LifecyclePolicy = lifecyclePolicy
		tg, err := target.New(ctx(t), target.Spec{Kind: "aws", AWS: c}, target.WithAWS(s.TargetOptions()))
		if err != nil {
			t.Fatal(err)
		}
		return targettest.Harness{Target: tg, Kind: "aws", Private: true}
	})
}

// TestMirrorThenPull copies an image with the copy engine into the
// stand-in's registry, which refuses repositories never created, then
// pulls it with the token GetAuthorizationToken hands out.
func TestMirrorThenPull(t *testing.T) {
	s, _ := standIn(t)
	src := registryproc.Start(t, registryproc.Options{})
	want := images.Push(t, src.Addr+"/team/app:1", images.Image(t, 4096, 3, "linux/amd64"))

	tg, err := target.New(ctx(t), target.Spec{Kind: "aws", AWS: s.Config()}, target.WithAWS(s.TargetOptions()))
	if err != nil {
		t.Fatal(err)
	}
	sources, err := auth.NewSources([]auth.Source{{Registry: src.Addr, Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	e := mirror.New(tg, mirror.Options{Sources: sources})
	ref, err := imageref.Parse(src.Addr + "/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Copy(ctx(t), mirror.Request{Source: ref})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want || res.Present {
		t.Fatalf("copy result %+v, want digest %s copied", res, want)
	}
	repo := "127.0.0.1_" + src.Addr[len("127.0.0.1:"):] + "/team/app"
	if _, ok := s.Repository(repo); !ok {
		t.Fatalf("repository %s was not created in ECR", repo)
	}

	pulled, err := name.ParseReference(s.RegistryAddr+"/"+repo+":1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(pulled, remote.WithContext(ctx(t)))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != 401 {
		t.Fatalf("anonymous pull: want 401, got %v", err)
	}
	img, err := remote.Image(pulled, remote.WithContext(ctx(t)), remote.WithAuth(&authn.Basic{Username: "AWS", Password: s.Password()}))
	if err != nil {
		t.Fatalf("pull with the ECR token: %v", err)
	}
	if d, _ := img.Digest(); d != want {
		t.Fatalf("pulled %s, want %s", d, want)
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorFromECRSource pulls from an ECR source registry through
// target.SourceKeychain, as the commands wire it: refused without it.
func TestMirrorFromECRSource(t *testing.T) {
	s, _ := standIn(t)
	s.PutRepository(cloudtest.Repository{Name: "team/app"})
	img := images.Image(t, 2048, 2, "")
	up, err := name.ParseReference(s.RegistryAddr+"/team/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(up, img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: s.Password()})); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	local, err := target.New(ctx(t), target.Spec{Kind: "local", Local: target.LocalSpec{Path: t.TempDir(), Registry: "127.0.0.1:7439"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.(*target.Local).Close() })
	ref, err := imageref.Parse(s.RegistryAddr + "/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.New(local, mirror.Options{}).Copy(ctx(t), mirror.Request{Source: ref}); err == nil {
		t.Fatal("copy from ECR without its keychain succeeded")
	}
	kc, err := target.SourceKeychain(ctx(t), target.CloudSources{ECR: []aws.Registry{s.Config().Registry}}, target.WithAWS(s.TargetOptions()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := mirror.New(local, mirror.Options{SourceKeychain: kc}).Copy(ctx(t), mirror.Request{Source: ref})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want {
		t.Fatalf("copied %s, want %s", res.Digest, want)
	}
}
