package hoststoml

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCleanupRemovesWhatWeCreated(t *testing.T) {
	root := t.TempDir()
	certs := filepath.Join(root, "certs.d")
	o := testOptions(certs, "docker.io", "ghcr.io")
	mustApply(t, o)

	res := mustCleanup(t, o)
	if exists(certs) {
		t.Errorf("certs dir we created is still there; removed %v", res.Removed)
	}
	if len(res.Restored) != 0 {
		t.Errorf("restored %v", res.Restored)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}

func TestCleanupKeepsFoldersNotOurs(t *testing.T) {
	certs := t.TempDir()
	ownDir := filepath.Join(certs, "quay.io") // existed before, without hosts.toml
	if err := os.Mkdir(ownDir, 0o755); err != nil {
		t.Fatal(err)
	}
	o := testOptions(certs, "docker.io", "quay.io", "ghcr.io")
	mustApply(t, o)
	// somebody puts a file into a folder we created
	writeFile(t, filepath.Join(certs, "ghcr.io", "ca.crt"), "x", 0o644)

	res := mustCleanup(t, o)
	for _, want := range []string{certs, ownDir, filepath.Join(certs, "ghcr.io", "ca.crt")} {
		if !exists(want) {
			t.Errorf("%s removed", want)
		}
	}
	if exists(filepath.Join(certs, "docker.io")) {
		t.Error("docker.io folder we created is still there")
	}
	for _, gone := range []string{filepath.Join(ownDir, "hosts.toml"), filepath.Join(certs, "ghcr.io", "hosts.toml")} {
		if exists(gone) || !slices.Contains(res.Removed, gone) {
			t.Errorf("%s not removed (%v)", gone, res.Removed)
		}
	}
}

// Hosts dropped from the config since Apply are still undone.
func TestCleanupFindsEveryManagedFolder(t *testing.T) {
	certs := t.TempDir()
	mustApply(t, testOptions(certs, "docker.io", "ghcr.io"))
	mustCleanup(t, testOptions(certs))
	if entries, _ := os.ReadDir(certs); len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}

func TestCleanupLeavesForeignFiles(t *testing.T) {
	certs := t.TempDir()
	path := filepath.Join(certs, "docker.io", "hosts.toml")
	writeFile(t, path, existingHosts, 0o644)
	unrelated := filepath.Join(certs, "quay.io", "hosts.toml")
	writeFile(t, unrelated, "server = \"https://quay.io\"\n", 0o644)
	o := testOptions(certs, "docker.io")
	mustApply(t, o)
	mine := readFile(t, path)
	// an operator replaces our file
	writeFile(t, path, "server = \"https://mirror.internal\"\n", 0o644)

	mustCleanup(t, testOptions(certs, "docker.io", "quay.io"))
	if got := string(readFile(t, path)); got != "server = \"https://mirror.internal\"\n" {
		t.Errorf("replaced file changed to %q (ours was %q)", got, mine)
	}
	if got := string(readFile(t, unrelated)); got != "server = \"https://quay.io\"\n" {
		t.Errorf("unrelated file changed to %q", got)
	}
	if exists(path+stateSuffix) || exists(path+backupSuffix) {
		t.Error("our marker files left behind")
	}
}

func TestCleanupWithoutAnythingToDo(t *testing.T) {
	res := mustCleanup(t, testOptions(filepath.Join(t.TempDir(), "missing"), "docker.io"))
	if len(res.Removed)+len(res.Restored) != 0 {
		t.Errorf("%+v", res)
	}
}
