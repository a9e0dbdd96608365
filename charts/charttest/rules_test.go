package charttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"
)

// The chart's PrometheusRule is valid for Prometheus (promtool check rules) and each alert fires
// for the fault it describes, and only then (promtool test rules, testdata/rules_test.yml).
func TestPrometheusRules(t *testing.T) {
	promtool := os.Getenv("PROMTOOL_BIN")
	if promtool == "" {
		var err error
		if promtool, err = exec.LookPath("promtool"); err != nil {
			if os.Getenv("PROMTOOL_REQUIRED") != "" {
				t.Fatal("promtool not found (Debian's prometheus package; make deps installs it)")
			}
			t.Skip("promtool not found: apt-get install prometheus, or set PROMTOOL_BIN; make test sets PROMTOOL_REQUIRED=1")
		}
	}
	rule := find(t, render(t, "--set", "prometheusRule.enabled=true", "--set", "hub.enabled=true"), "PrometheusRule", "")
	spec, ok := rule.U.Object["spec"].(map[string]any)
	if !ok {
		t.Fatalf("%s has no spec", rule)
	}
	rules, err := sigsyaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("testdata", "rules_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yml"}, {"test", "rules", "rules_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
