package charttest

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

// metricDef is a metric internal/metrics defines: its full name, kind and label names.
type metricDef struct {
	Name   string
	Kind   string // Counter, Gauge, Histogram, Summary
	Labels []string
}

// definedMetrics reads internal/metrics' source: every prometheus.NewX / NewXVec call, its
// Opts' Namespace, Subsystem and Name, and the label names of vectors. Vectors export nothing
// until a label value is used, so the source is where all of them are found;
// TestDefinedMetricsMatchRegistry checks this reading against the live registry.
func definedMetrics(t testing.TB) map[string]metricDef {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "internal", "metrics")
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, file)
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	str := func(e ast.Expr) string {
		switch v := e.(type) {
		case *ast.BasicLit:
			s, _ := strconv.Unquote(v.Value)
			return s
		case *ast.Ident:
			if s, ok := consts[v.Name]; ok {
				return s
			}
			t.Fatalf("metrics: %s is not a string constant of the package", v.Name)
		}
		t.Fatalf("metrics: cannot read %T as a string", e)
		return ""
	}
	ctor := regexp.MustCompile(`^New(Counter|Gauge|Histogram|Summary)(Vec)?$`)
	defs := map[string]metricDef{}
	for _, file := range parsed {
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
				return true
			}
			m := ctor.FindStringSubmatch(sel.Sel.Name)
			if m == nil || len(call.Args) == 0 {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				t.Fatalf("metrics: %s called without an Opts literal", sel.Sel.Name)
			}
			var parts [3]string // namespace, subsystem, name
			for _, el := range opts.Elts {
				kv := el.(*ast.KeyValueExpr)
				switch kv.Key.(*ast.Ident).Name {
				case "Namespace":
					parts[0] = str(kv.Value)
				case "Subsystem":
					parts[1] = str(kv.Value)
				case "Name":
					parts[2] = str(kv.Value)
				}
			}
			var nameParts []string
			for _, p := range parts {
				if p != "" {
					nameParts = append(nameParts, p)
				}
			}
			d := metricDef{Name: strings.Join(nameParts, "_"), Kind: m[1]}
			if m[2] == "Vec" && len(call.Args) > 1 {
				if lit, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, el := range lit.Elts {
						d.Labels = append(d.Labels, str(el))
					}
				}
			}
			defs[d.Name] = d
			return true
		})
	}
	if len(defs) == 0 {
		t.Fatal("no metrics found in internal/metrics")
	}
	return defs
}

// TestDefinedMetricsMatchRegistry checks the source reading against the registry: every metric
// the registry exports now under the prefix was found in the source, and every one found that
// is not a vector (so exported from the start) is in the registry.
func TestDefinedMetricsMatchRegistry(t *testing.T) {
	defs := definedMetrics(t)
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "k8s_image_swapper_") {
			live[f.GetName()] = true
			if _, ok := defs[f.GetName()]; !ok {
				t.Errorf("registry exports %s, which the source reading missed", f.GetName())
			}
		}
	}
	for name, d := range defs {
		if !strings.HasPrefix(name, "k8s_image_swapper_") {
			t.Errorf("metric %s lacks the k8s_image_swapper_ prefix", name)
		}
		if d.Labels == nil && !live[name] {
			t.Errorf("source defines %s without labels, but the registry does not export it", name)
		}
	}
}

// Labels every scraped series carries from Prometheus' target discovery, and le of histogram
// buckets; a dashboard may group and filter by them.
var targetLabels = []string{"namespace", "pod", "instance", "job", "container", "service", "endpoint", "node", "le"}

var (
	metricRef   = regexp.MustCompile(`\b(k8s_image_swapper_[a-zA-Z0-9_]+)(\{([^}]*)\})?`)
	matcherName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	byClause    = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// baseMetric maps a series name to the metric that produces it (histogram and summary series).
func baseMetric(defs map[string]metricDef, series string) (metricDef, bool) {
	if d, ok := defs[series]; ok {
		return d, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if d, ok := defs[strings.TrimSuffix(series, suffix)]; ok && strings.HasSuffix(series, suffix) &&
			(d.Kind == "Histogram" || d.Kind == "Summary" && suffix != "_bucket") {
			return d, true
		}
	}
	return metricDef{}, false
}

// dashboardQueries walks the dashboard JSON for every PromQL expression: panel targets (rows
// included) and query variables, with the legend formats of the targets.
func dashboardQueries(t testing.TB, dash map[string]any) (exprs []string, legends []string) {
	t.Helper()
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if e, ok := x["expr"].(string); ok {
				exprs = append(exprs, e)
				if l, ok := x["legendFormat"].(string); ok {
					legends = append(legends, e+"\x00"+l)
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(dash["panels"])
	if tm, ok := dash["templating"].(map[string]any); ok {
		for _, v := range tm["list"].([]any) {
			v := v.(map[string]any)
			if v["type"] != "query" {
				continue
			}
			switch q := v["query"].(type) {
			case string:
				exprs = append(exprs, q)
			case map[string]any:
				exprs = append(exprs, q["query"].(string))
			}
		}
	}
	return exprs, legends
}

func loadDashboard(t testing.TB) (map[string]any, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "dashboards", "k8s-image-swapper.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	return dash, raw
}

// TestDashboardMetrics: every metric a dashboard query names is one the binary exports, and
// every label it filters, groups or labels the legend by is one that metric has.
func TestDashboardMetrics(t *testing.T) {
	defs := definedMetrics(t)
	dash, _ := loadDashboard(t)
	exprs, legends := dashboardQueries(t, dash)
	if len(exprs) < 10 {
		t.Fatalf("only %d queries found in the dashboard", len(exprs))
	}
	used := map[string]bool{}
	labelsOf := func(expr string) []string {
		ls := slices.Clone(targetLabels)
		for _, m := range metricRef.FindAllStringSubmatch(expr, -1) {
			if d, ok := baseMetric(defs, m[1]); ok {
				ls = append(ls, d.Labels...)
			}
		}
		return ls
	}
	for _, expr := range exprs {
		refs := metricRef.FindAllStringSubmatch(expr, -1)
		if len(refs) == 0 {
			t.Errorf("query names no k8s_image_swapper_ metric: %s", expr)
		}
		for _, m := range refs {
			d, ok := baseMetric(defs, m[1])
			if !ok {
				t.Errorf("query uses %s, which internal/metrics does not define: %s", m[1], expr)
				continue
			}
			used[d.Name] = true
			allowed := append(slices.Clone(targetLabels), d.Labels...)
			for _, mm := range matcherName.FindAllStringSubmatch(m[3], -1) {
				if !slices.Contains(allowed, mm[1]) {
					t.Errorf("query filters %s by label %q, which it does not have (labels %v): %s", d.Name, mm[1], d.Labels, expr)
				}
			}
		}
		allowed := labelsOf(expr)
		for _, b := range byClause.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(b[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !slices.Contains(allowed, l) {
					t.Errorf("query groups by %q, which none of its metrics has: %s", l, expr)
				}
			}
		}
	}
	for _, el := range legends {
		expr, legend, _ := strings.Cut(el, "\x00")
		for _, m := range legendLabel.FindAllStringSubmatch(legend, -1) {
			if !slices.Contains(labelsOf(expr), m[1]) {
				t.Errorf("legend %q uses label %q, which %s does not have", legend, m[1], expr)
			}
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{
		"k8s_image_swapper_image_decisions_total",           // swaps
		"k8s_image_swapper_copies_total",                    // copies
		"k8s_image_swapper_copy_queue_depth",                // queue depth
		"k8s_image_swapper_proxy_requests_total",            // proxy hit ratio
		"k8s_image_swapper_proxy_bytes_total",               // bytes by origin
		"k8s_image_swapper_admission_duration_seconds",      // latency
		"k8s_image_swapper_proxy_upstream_duration_seconds", // latency
	} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	var unused []string
	for name := range defs {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("metrics not on the dashboard: %v", unused)
	}
}

// TestDashboardShape: unique panel ids, the datasource a variable (so it works in any Grafana),
// and the chart's ConfigMap carries the file unchanged, labelled for the sidecar.
func TestDashboardShape(t *testing.T) {
	dash, raw := loadDashboard(t)
	if dash["uid"] == "" || dash["title"] == "" {
		t.Errorf("dashboard needs a uid and a title")
	}
	ids := map[float64]bool{}
	var walk func(ps []any)
	walk = func(ps []any) {
		for _, p := range ps {
			p := p.(map[string]any)
			id, _ := p["id"].(float64)
			if ids[id] {
				t.Errorf("panel id %v used twice", id)
			}
			ids[id] = true
			if p["type"] != "row" {
				ds, _ := p["datasource"].(map[string]any)
				if ds["uid"] != "${datasource}" {
					t.Errorf("panel %q: datasource %v, want the ${datasource} variable", p["title"], p["datasource"])
				}
			}
			if sub, ok := p["panels"].([]any); ok {
				walk(sub)
			}
		}
	}
	walk(dash["panels"].([]any))

	objs := render(t, "--set", "grafanaDashboard.enabled=true")
	var cm *corev1.ConfigMap
	for _, o := range findAll(objs, "ConfigMap") {
		if c := as[*corev1.ConfigMap](t, o); c.Data["k8s-image-swapper.json"] != "" {
			cm = c
		}
	}
	if cm == nil {
		t.Fatal("grafanaDashboard.enabled renders no dashboard ConfigMap")
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap lacks the sidecar label: %v", cm.Labels)
	}
	if strings.TrimSpace(cm.Data["k8s-image-swapper.json"]) != strings.TrimSpace(string(raw)) {
		t.Errorf("the ConfigMap's dashboard differs from dashboards/k8s-image-swapper.json")
	}
	for _, o := range render(t) {
		if o.Kind() == "ConfigMap" && as[*corev1.ConfigMap](t, o).Data["k8s-image-swapper.json"] != "" {
			t.Errorf("dashboard rendered although grafanaDashboard.enabled is false")
		}
	}
}
