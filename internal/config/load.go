package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// fileNames are looked up, in order, in the working folder and then $HOME.
var fileNames = []string{".k8s-image-swapper.yml", ".k8s-image-swapper.yaml"}

// Problem is one thing wrong with a config file.
type Problem struct {
	Key  string // dotted path, e.g. target.aws.region
	Line int    // 1-based; 0 when unknown
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Key, p.Msg)
	}
	if p.Key == "" {
		return p.Msg
	}
	return fmt.Sprintf("%s: %s", p.Key, p.Msg)
}

// Error lists every problem found in a file, and the warnings beside them.
type Error struct {
	File     string
	Problems []Problem
	Warnings []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	name := e.File
	if name == "" {
		name = "config"
	}
	fmt.Fprintf(&b, "%s: %d problem(s)", name, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	for _, p := range e.Warnings {
		b.WriteString("\n  warning: ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Options change how a file is read.
type Options struct {
	// Strict makes unknown keys errors rather than warnings, as
	// `config validate` and --strict-config want.
	Strict bool
}

// find returns the config file to use: explicit if set, else the first of
// fileNames in the working folder, then in $HOME. "" means none was found.
func find(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("config file: %w", err)
		}
		return explicit, nil
	}
	dirs := []string{"."}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, home)
	}
	for _, d := range dirs {
		for _, n := range fileNames {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", nil
}

// Load finds and reads the config file; with none found it returns the
// defaults (a local target), which is the embedded default mode.
func Load(explicit string, o Options) (*Config, string, error) {
	path, err := find(explicit)
	if err != nil {
		return nil, "", err
	}
	if path == "" {
		c, err := Parse(nil, o)
		return c, "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data, o)
	var ce *Error
	if errors.As(err, &ce) {
		ce.File = path
	}
	return c, path, err
}

// Parse decodes and validates a config document. Wrong types and values
// no copy could work with are errors; what the original accepted (unknown
// keys, keys in another case, values it ignored or fell back from) are
// warnings, in Config.Warnings. All are reported together, each with its
// key and line.
func Parse(data []byte, o Options) (*Config, error) {
	c := &Config{lines: map[string]int{}}
	// The original's viper default; an explicit false is kept.
	c.Target.AWS.ECROptions.ImageScanningConfiguration.ImageScanOnPush = true
	d := &decoder{lines: c.lines, strict: o.Strict}
	if len(bytes.TrimSpace(data)) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, &Error{Problems: []Problem{{Msg: "invalid YAML: " + err.Error()}}}
		}
		if len(doc.Content) > 0 {
			d.decode(doc.Content[0], reflect.ValueOf(c).Elem(), "")
		}
	}
	d.applyEnv(reflect.ValueOf(c).Elem(), "")
	// Validate what did decode too, so one run reports every problem.
	c.expandEnv()
	c.applyDefaults()
	errs, warns := c.validate(c.lines)
	problems := append(d.problems, errs...)
	warnings := append(d.warnings, warns...)
	byLine := func(ps []Problem) {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	}
	byLine(problems)
	byLine(warnings)
	if len(problems) > 0 {
		return nil, &Error{Problems: problems, Warnings: warnings}
	}
	c.Warnings = warnings
	return c, nil
}

// IsSet tells whether the file wrote key (a dotted path as Problem.Key
// names it, in the canonical spelling).
func (c *Config) IsSet(key string) bool {
	_, ok := c.lines[key]
	return ok
}

var durationType = reflect.TypeOf(Duration(0))

// decoder walks a YAML document into a Config, collecting what is wrong.
type decoder struct {
	lines    map[string]int // line of every key written, by canonical path
	strict   bool
	problems []Problem // errors
	warnings []Problem
}

func (d *decoder) fail(ps ...Problem) { d.problems = append(d.problems, ps...) }

// decode walks a YAML node into v, checking every key against the struct's
// yaml tags so that a misspelt key is reported, never silently ignored.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty key (`filters:`) keeps the zero value
	}
	switch {
	case v.Type() == durationType:
		d.fail(decodeDuration(n, v, path)...)
	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(Problem{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a mapping, got %s", kindName(n))})
			return
		}
		d.decodeStruct(n, v, path)
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(Problem{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a list, got %s", kindName(n))})
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		d.fail(decodeScalar(n, v, path)...)
	}
}

// fieldsOf maps the yaml names of t's fields to their index.
func fieldsOf(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	return fields
}

// field finds a key's field: by its exact name, else in any case, as the
// original's viper matched keys.
func field(fields map[string]int, key string) (string, int, bool) {
	if i, ok := fields[key]; ok {
		return key, i, true
	}
	for name, i := range fields {
		if strings.EqualFold(name, key) {
			return name, i, true
		}
	}
	return "", 0, false
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	fields := fieldsOf(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name, idx, ok := field(fields, k.Value)
		if !ok {
			p := Problem{Key: join(path, k.Value), Line: k.Line, Msg: "unknown key" + suggest(k.Value, fields)}
			if d.strict {
				d.fail(p)
			} else {
				p.Msg += "; ignored"
				d.warnings = append(d.warnings, p)
			}
			continue
		}
		key := join(path, name)
		if first, dup := seen[name]; dup {
			msg := "duplicate key"
			if first.Value != k.Value {
				msg = fmt.Sprintf("duplicate key: %q at line %d is the same key in another case", first.Value, first.Line)
			}
			d.fail(Problem{Key: join(path, k.Value), Line: k.Line, Msg: msg})
			continue
		}
		seen[name] = k
		if name != k.Value {
			d.warnings = append(d.warnings, Problem{Key: join(path, k.Value), Line: k.Line,
				Msg: fmt.Sprintf("read as %q: keys match in any case, as in the original; write %q", key, name)})
		}
		d.lines[key] = k.Line
		d.decode(val, v.Field(idx), key)
		d.lines[key] = k.Line
	}
}

func decodeScalar(n *yaml.Node, v reflect.Value, path string) []Problem {
	if n.Kind != yaml.ScalarNode {
		return []Problem{{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a single value, got %s", kindName(n))}}
	}
	switch v.Kind() {
	case reflect.String:
		// Numbers are accepted where a string is expected: `accountId: 123456789`.
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			return []Problem{{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected true or false, got %q", n.Value)}}
		}
		v.SetBool(b)
	case reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if err != nil {
			return []Problem{{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected an integer, got %q", n.Value)}}
		}
		v.SetInt(int64(i))
	default:
		return []Problem{{Key: path, Line: n.Line, Msg: "unsupported value type " + v.Kind().String()}}
	}
	return nil
}

func decodeDuration(n *yaml.Node, v reflect.Value, path string) []Problem {
	if n.Kind != yaml.ScalarNode {
		return []Problem{{Key: path, Line: n.Line, Msg: "expected a duration such as 8s"}}
	}
	if secs, err := strconv.Atoi(n.Value); err == nil {
		v.SetInt(int64(time.Duration(secs) * time.Second))
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d < 0 {
		return []Problem{{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a duration such as 8s or 1m, got %q", n.Value)}}
	}
	v.SetInt(int64(d))
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names the closest known key, which catches miscasing and typos.
func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 4
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if d := distance(strings.ToLower(key), strings.ToLower(f)); d < bestDist {
			best, bestDist = f, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf(" (known keys: %s)", strings.Join(names, ", "))
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
