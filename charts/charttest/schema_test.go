package charttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
)

type schemaNode = map[string]any

func loadSchema(t testing.TB) schemaNode {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s schemaNode
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	if s["$schema"] != "http://json-schema.org/draft-07/schema#" {
		t.Errorf("$schema %v, want draft-07", s["$schema"])
	}
	return s
}

// resolve follows a local $ref.
func resolve(t testing.TB, root, n schemaNode) schemaNode {
	t.Helper()
	ref, ok := n["$ref"].(string)
	if !ok {
		return n
	}
	cur := any(root)
	for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cur = cur.(map[string]any)[p]
	}
	if cur == nil {
		t.Fatalf("$ref %s does not resolve", ref)
	}
	return resolve(t, root, cur.(schemaNode))
}

func properties(n schemaNode) map[string]any {
	p, _ := n["properties"].(map[string]any)
	return p
}

// TestSchemaRefusesMistakes: typos and bad values fail at install, naming the key, instead of
// a webhook that silently does nothing.
func TestSchemaRefusesMistakes(t *testing.T) {
	for _, set := range []string{
		"nonsense=1",
		"proxy.hostNetwrk=false",
		"webhook.failurePolicy=Sometimes",
		"webhook.timeoutSeconds=60",
		"config.dryRun=maybe",
		"config.imageCopyDeadline=soon",
		"certmanager.issuerKind=Vault",
		"secretReader.enable=true",
	} {
		_, err := helm(t, templateArgs("--set", set)...)
		if err == nil {
			t.Errorf("--set %s: accepted", set)
			continue
		}
		key := strings.Split(strings.Split(set, "=")[0], ".")
		last := key[len(key)-1]
		if i := strings.Index(last, "["); i > 0 {
			last = last[:i]
		}
		if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), last) {
			t.Errorf("--set %s: the error does not name the key as a schema problem:\n%v", set, err)
		}
	}
	// What the original chart and binary accepted in config is accepted: the binary warns about
	// it at start (unknown and miscased keys, values it falls back from).
	for _, set := range []string{"config.target.aws.acountId=1", "config.LogLevel=debug", "config.logLevel=verbose",
		"config.imageSwapPolicy=sometimes", "config.source.filter[0].jmespath=x"} {
		if _, err := helm(t, templateArgs("--set", set)...); err != nil {
			t.Errorf("--set %s: refused, although the original accepted it: %v", set, err)
		}
	}
	// The original chart's values: all accepted (also rendered in TestRenderings).
	if _, err := helm(t, templateArgs("-f", filepath.Join(chartDir(t), "ci", "original-defaults-values.yaml"))...); err != nil {
		t.Errorf("the original chart's values: %v", err)
	}
}

// TestSchemaMatchesConfig: the schema's config section has the keys of internal/config.Config,
// at every level, and lets other keys through: the binary reads keys in any case and warns about
// unknown ones (as the original ignored them), refusing them only with strictConfig.
func TestSchemaMatchesConfig(t *testing.T) {
	root := loadSchema(t)
	cfg := resolve(t, root, properties(root)["config"].(schemaNode))
	compareStruct(t, root, cfg, reflect.TypeOf(config.Config{}), "config")
}

func compareStruct(t *testing.T, root, n schemaNode, typ reflect.Type, path string) {
	t.Helper()
	if n["additionalProperties"] != true {
		t.Errorf("schema %s: additionalProperties must be true (the binary warns about unknown keys, and reads miscased ones)", path)
	}
	props := properties(n)
	var fields []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		fields = append(fields, tag)
		sub, ok := props[tag].(schemaNode)
		if !ok {
			t.Errorf("schema %s lacks %s.%s (internal/config %s.%s)", path, path, tag, typ.Name(), f.Name)
			continue
		}
		sub = resolve(t, root, sub)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			if items, ok := sub["items"].(schemaNode); ok {
				sub = resolve(t, root, items)
			}
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			compareStruct(t, root, sub, ft, path+"."+tag)
		}
	}
	var extra []string
	for k := range props {
		if !slices.Contains(fields, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("schema %s has keys internal/config does not: %v", path, extra)
	}
}

// TestSchemaCoversValues: every key of values.yaml is in the schema, with the type of its
// default, and nothing under a closed object is missing.
func TestSchemaCoversValues(t *testing.T) {
	root := loadSchema(t)
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := sigsyaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	var walk func(n schemaNode, v map[string]any, path string)
	walk = func(n schemaNode, v map[string]any, path string) {
		props := properties(n)
		for k, val := range v {
			p := strings.TrimPrefix(path+"."+k, ".")
			sub, ok := props[k].(schemaNode)
			if !ok {
				if n["additionalProperties"] == false {
					t.Errorf("values.yaml has %s, which the schema does not", p)
				}
				continue
			}
			sub = resolve(t, root, sub)
			if !typeAllows(sub, val) {
				t.Errorf("values.yaml %s = %v does not have the schema's type %v", p, val, sub["type"])
			}
			if m, ok := val.(map[string]any); ok && properties(sub) != nil {
				walk(sub, m, p)
			}
		}
	}
	walk(root, values, "")
}

func typeAllows(n schemaNode, v any) bool {
	var types []string
	switch t := n["type"].(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			types = append(types, x.(string))
		}
	default:
		return true // anyOf and the like: helm validates those
	}
	kind := "null"
	switch x := v.(type) {
	case bool:
		kind = "boolean"
	case float64:
		kind = "number"
		if x == float64(int64(x)) {
			kind = "integer"
		}
	case string:
		kind = "string"
	case []any:
		kind = "array"
	case map[string]any:
		kind = "object"
	}
	return slices.Contains(types, kind) || kind == "integer" && slices.Contains(types, "number")
}
