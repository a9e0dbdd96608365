package fetch

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// Within tagTTL a tag's answer stands and the source is not asked again;
// once it has passed, the source's current digest is read.
func TestTagTTL(t *testing.T) {
	src := registryproc.Start(t, registryproc.Options{})
	creds, err := auth.NewSources([]auth.Source{{Registry: src.Addr, Insecure: true}})
	must(t, err)
	s, err := New(Options{Credentials: creds, TagTTL: time.Hour, SpoolDir: t.TempDir(), Logger: quiet()})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	repo := Source{Registry: src.Addr, Repo: "team/app"}
	first := images.Push(t, src.Addr+"/team/app:latest", images.Image(t, 1000, 1, ""))
	ctx := context.Background()
	if d, err := s.ResolveTag(ctx, repo, "latest"); err != nil || d.Digest.String() != first.String() {
		t.Fatalf("ResolveTag: %v %v, want %s", d.Digest, err, first)
	}
	second := images.Push(t, src.Addr+"/team/app:latest", images.Image(t, 1000, 1, ""))
	src.ResetLog()
	if d, err := s.ResolveTag(ctx, repo, "latest"); err != nil || d.Digest.String() != first.String() {
		t.Fatalf("within tagTTL: %v %v, want the first %s", d.Digest, err, first)
	}
	if n := src.Count(http.MethodHead, "/manifests/latest"); n != 0 {
		t.Errorf("the source was asked %d times within tagTTL", n)
	}
	s.tags.Delete(repo.String() + ":latest") // as if tagTTL had passed
	if d, err := s.ResolveTag(ctx, repo, "latest"); err != nil || d.Digest.String() != second.String() {
		t.Fatalf("after tagTTL: %v %v, want the second %s", d.Digest, err, second)
	}
}
