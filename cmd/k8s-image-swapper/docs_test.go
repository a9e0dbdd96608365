package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README sends users of the original to docs/migrating.md, which leads
// with what an upgrade that keeps the original chart's values changes most:
// dryRun.
func TestMigratingGuide(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "](docs/migrating.md)") {
		t.Error("README.md does not link docs/migrating.md")
	}
	guide, err := os.ReadFile(filepath.Join(root, "docs", "migrating.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(guide), "\n") {
		if strings.HasPrefix(line, "## ") {
			if !strings.Contains(line, "dryRun") {
				t.Errorf("docs/migrating.md leads with %q, not with dryRun", line)
			}
			break
		}
	}
}
