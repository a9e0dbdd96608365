package charttest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// grafanaSchemas maps a dashboard schemaVersion to the @grafana/schema release whose types
// describe it (hack/tools.sh installs it).
var grafanaSchemas = map[int]string{39: "10.4.0"}

// Panel types the dashboard may use, and the @grafana/schema module of their options.
var panelConfigs = map[string]string{
	"stat":       "stat/panelcfg/x/StatPanelCfg_types.gen",
	"timeseries": "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
	"bargauge":   "bargauge/panelcfg/x/BarGaugePanelCfg_types.gen",
	"table":      "table/panelcfg/x/TablePanelCfg_types.gen",
}

// The dashboard is checked against the dashboard schema of the Grafana release its
// schemaVersion belongs to: Grafana's own generated types (@grafana/schema), with the TypeScript
// compiler. The dashboard, each panel with its panel type's options and field config, and each
// Prometheus query are object literals of those types, so an unknown key, a missing required
// one, a wrong type or a value outside an enum is an error.
func TestDashboardSchema(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(t), "dashboards", "k8s-image-swapper.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	sv, _ := d["schemaVersion"].(float64)
	version, ok := grafanaSchemas[int(sv)]
	if !ok {
		t.Fatalf("schemaVersion %v: no @grafana/schema release known for it (add it to grafanaSchemas and hack/tools.sh)", sv)
	}
	dir := grafanaSchemaDir(t, version)
	src, err := dashboardTS(d)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "dashboard.ts"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "node_modules", ".bin", "tsc"),
		"--noEmit", "--strict", "--moduleResolution", "node", "--target", "es2020", "dashboard.ts")
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the dashboard does not match Grafana %s's dashboard schema (%v):\n%s", version, err, out)
	}
}

// grafanaSchemaDir is hack/tools.sh's folder for @grafana/schema; missing, the test skips
// unless E2E_REQUIRED is set (CI), in which case hack/tools.sh installs it.
func grafanaSchemaDir(t *testing.T, version string) string {
	t.Helper()
	script := filepath.Join(repoRoot(t), "hack", "tools.sh")
	out, err := exec.Command("bash", script, "path", "grafana-schema").Output()
	if err != nil {
		t.Fatalf("%s path grafana-schema: %v", script, err)
	}
	dir := strings.TrimSpace(string(out))
	if !strings.HasSuffix(dir, "-"+version) {
		t.Fatalf("hack/tools.sh installs @grafana/schema as %s, the dashboard needs %s", dir, version)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", "tsc")); err == nil {
		return dir
	}
	if os.Getenv("E2E_REQUIRED") == "" {
		t.Skip("@grafana/schema not installed: run `bash hack/tools.sh grafana-schema` (npm, seconds); CI sets E2E_REQUIRED=1")
	}
	cmd := exec.Command("bash", script, "grafana-schema")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("install @grafana/schema: %v", err)
	}
	return dir
}

// dashboardTS writes the dashboard as TypeScript typed with Grafana's types.
func dashboardTS(d map[string]any) (string, error) {
	const raw = "@grafana/schema/dist/esm/raw"
	var b strings.Builder
	fmt.Fprintf(&b, "import type { Dashboard, Panel, RowPanel, FieldConfigSource, FieldConfig } from '%s/dashboard/x/dashboard_types.gen';\n", raw)
	fmt.Fprintf(&b, "import type { PrometheusDataQuery } from '%s/composable/prometheus/dataquery/x/PrometheusDataQuery_types.gen';\n", raw)
	for _, kind := range []string{"stat", "timeseries", "bargauge", "table"} {
		fmt.Fprintf(&b, "import type * as %s from '%s/composable/%s';\n", kind, raw, panelConfigs[kind])
	}
	// JSON writes Grafana's string enums as their values: Loose turns each into the union of them.
	b.WriteString(`
type Loose<T> = T extends string ? ` + "`${T}`" + ` : T extends Array<infer U> ? Array<Loose<U>> : T extends object ? { [K in keyof T]: Loose<T[K]> } : T;
type Typed<O, C> = Loose<Omit<Panel, 'options' | 'fieldConfig' | 'targets'>> & {
  options?: Loose<O>;
  fieldConfig?: Loose<Omit<FieldConfigSource, 'defaults'>> & { defaults: Loose<Omit<FieldConfig, 'custom'>> & { custom?: Loose<C> } };
  targets?: Array<Loose<PrometheusDataQuery>>;
};
`)
	top := map[string]any{}
	for k, v := range d {
		if k != "panels" {
			top[k] = v
		}
	}
	lit, err := json.MarshalIndent(top, "", " ")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "export const dashboard: Loose<Omit<Dashboard, 'panels'>> = %s;\n", lit)
	panels, _ := d["panels"].([]any)
	for i, p := range panels {
		lit, err := json.MarshalIndent(p, "", " ")
		if err != nil {
			return "", err
		}
		kind, _ := p.(map[string]any)["type"].(string)
		switch kind {
		case "row":
			fmt.Fprintf(&b, "export const panel%d: Loose<RowPanel> = %s;\n", i, lit)
		case "timeseries", "table":
			fmt.Fprintf(&b, "export const panel%d: Typed<%s.Options, %s.FieldConfig> = %s;\n", i, kind, kind, lit)
		case "stat", "bargauge":
			fmt.Fprintf(&b, "export const panel%d: Typed<%s.Options, Record<string, never>> = %s;\n", i, kind, lit)
		default:
			return "", fmt.Errorf("panel %d: type %q has no schema here (add it to panelConfigs)", i, kind)
		}
	}
	return b.String(), nil
}
