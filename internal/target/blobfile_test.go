package target

import (
	"errors"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BlobFile opens a blob's file for the repositories that hold it, and for
// no other, whatever the repository name tries.
func TestLocalBlobFile(t *testing.T) {
	l := openLocal(t, t.TempDir())
	data := []byte("a layer's bytes")
	d := digest.FromBytes(data)
	pushBlob(t, l.Handler(), "team/app", data, d)

	f, err := l.BlobFile("team/app", d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(got) != string(data) {
		t.Fatalf("BlobFile: %q, %v; want %q", got, err, data)
	}
	for _, repo := range []string{"team/other", "../team/app", "team/../team/app", "/team/app", ""} {
		if f, err := l.BlobFile(repo, d); !errors.Is(err, os.ErrNotExist) {
			if f != nil {
				f.Close()
			}
			t.Errorf("BlobFile(%q): %v, want not found", repo, err)
		}
	}
	if _, err := l.BlobFile("team/app", "sha256:nothex"); err == nil {
		t.Error("BlobFile of an invalid digest: no error")
	}
	// Deleted from the repository, it is no longer its file.
	if w := call(t, l.Handler(), http.MethodDelete, "/v2/team/app/blobs/"+d.String(), nil, ""); w.Code != http.StatusAccepted {
		t.Fatalf("DELETE blob: %d %s", w.Code, w.Body)
	}
	if _, err := l.BlobFile("team/app", d); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("BlobFile after delete: %v, want not found", err)
	}
}
