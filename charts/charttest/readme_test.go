package charttest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the chart README's values table from values.yaml")

const (
	tableStart = "<!-- values table: generated from values.yaml by `go test ./charts/charttest -run TestReadme -update` -->"
	tableEnd   = "<!-- end of values table -->"
)

// valueRow is one documented value.
type valueRow struct {
	Key, Type, Default, Desc string
}

// valueRows reads values.yaml: a row for every key with a "# --" description and for every
// leaf, where an object described as a whole (none of its keys described) is one leaf.
func valueRows(t testing.TB) []valueRow {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var rows []valueRow
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := strings.TrimPrefix(prefix+"."+k.Value, ".")
			desc, described := description(k)
			childDescribed := false
			if v.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(v.Content); j += 2 {
					if _, ok := description(v.Content[j]); ok {
						childDescribed = true
					}
				}
			}
			switch {
			case v.Kind == yaml.MappingNode && len(v.Content) > 0 && childDescribed:
				if described {
					rows = append(rows, valueRow{key, "object", defaultOf(t, v, true), desc})
				}
				walk(v, key)
			case v.Kind == yaml.MappingNode && len(v.Content) > 0 && !described:
				walk(v, key)
			default:
				rows = append(rows, valueRow{key, typeOf(v), defaultOf(t, v, false), desc})
			}
		}
	}
	walk(doc.Content[0], "")
	orig := originalKeys(t)
	for i := range rows {
		if !orig[rows[i].Key] {
			rows[i].Desc = "(new) " + rows[i].Desc
		}
	}
	return rows
}

// originalKeys are the key paths of the original chart's values (ci/original-defaults-values.yaml).
func originalKeys(t testing.TB) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "ci", "original-defaults-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(m map[string]any, prefix string)
	walk = func(m map[string]any, prefix string) {
		for k, val := range m {
			key := strings.TrimPrefix(prefix+"."+k, ".")
			keys[key] = true
			if sub, ok := val.(map[string]any); ok {
				walk(sub, key)
			}
		}
	}
	walk(v, "")
	return keys
}

func description(k *yaml.Node) (string, bool) {
	var lines []string
	found := false
	for _, l := range strings.Split(k.HeadComment, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "# -- "):
			found = true
			lines = []string{strings.TrimPrefix(l, "# -- ")}
		case found && strings.HasPrefix(l, "# "):
			lines = append(lines, strings.TrimPrefix(l, "# "))
		}
	}
	return strings.Join(lines, " "), found
}

func typeOf(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "object"
	case yaml.SequenceNode:
		return "list"
	}
	switch v.Tag {
	case "!!bool":
		return "bool"
	case "!!int":
		return "int"
	case "!!float":
		return "float"
	case "!!null":
		return "null"
	}
	return "string"
}

func defaultOf(t testing.TB, v *yaml.Node, summary bool) string {
	t.Helper()
	var x any
	if err := v.Decode(&x); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	if summary && len(b) > 80 {
		return "see below"
	}
	return "`" + strings.ReplaceAll(string(b), "|", `\|`) + "`"
}

func valuesTable(rows []valueRow) string {
	var b bytes.Buffer
	b.WriteString("| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Key, r.Type, r.Default, strings.ReplaceAll(r.Desc, "|", `\|`))
	}
	return b.String()
}

// TestReadmeValues: the README's values table is the one values.yaml makes, so it lists every
// value with its default. -update rewrites it.
func TestReadmeValues(t *testing.T) {
	path := filepath.Join(chartDir(t), "README.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start, end := strings.Index(readme, tableStart), strings.Index(readme, tableEnd)
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the values table markers %q ... %q", tableStart, tableEnd)
	}
	rows := valueRows(t)
	want := valuesTable(rows)
	got := strings.TrimSpace(readme[start+len(tableStart) : end])
	if got == strings.TrimSpace(want) {
		return
	}
	if *update {
		readme = readme[:start+len(tableStart)] + "\n" + want + readme[end:]
		if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the values table of %s (%d rows)", path, len(rows))
		return
	}
	for _, r := range rows {
		if !strings.Contains(got, "| "+r.Key+" |") {
			t.Errorf("README.md does not list %s", r.Key)
		}
	}
	t.Errorf("README.md's values table is not the one values.yaml makes; run go test ./charts/charttest -run TestReadme -update")
}

// TestValuesDescribed: every value says what it does.
func TestValuesDescribed(t *testing.T) {
	for _, r := range valueRows(t) {
		if strings.TrimPrefix(r.Desc, "(new) ") == "" {
			t.Errorf("values.yaml: %s has no \"# --\" description", r.Key)
		}
	}
}
