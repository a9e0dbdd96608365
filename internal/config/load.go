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

// FileNames are looked up, in order, in the working folder and then $HOME.
var FileNames = []string{".k8s-image-swapper.yml", ".k8s-image-swapper.yaml"}

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

// Error lists every problem found in a file.
type Error struct {
	File     string
	Problems []Problem
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
	return b.String()
}

// Find returns the config file to use: explicit if set, else the first of
// FileNames in the working folder, then in $HOME. "" means none was found.
func Find(explicit string) (string, error) {
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
		for _, n := range FileNames {
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
func Load(explicit string) (*Config, string, error) {
	path, err := Find(explicit)
	if err != nil {
		return nil, "", err
	}
	if path == "" {
		c, err := Parse(nil)
		return c, "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	var ce *Error
	if errors.As(err, &ce) {
		ce.File = path
	}
	return c, path, err
}

// Parse decodes and validates a config document. Unknown keys, wrong types
// and invalid values are all reported together, each with its key and line.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	lines := map[string]int{}
	var problems []Problem
	if len(bytes.TrimSpace(data)) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, &Error{Problems: []Problem{{Msg: "invalid YAML: " + err.Error()}}}
		}
		if len(doc.Content) > 0 {
			root := doc.Content[0]
			problems = decode(root, reflect.ValueOf(c).Elem(), "", lines)
		}
	}
	// Validate what did decode too, so one run reports every problem.
	c.expandEnv()
	c.applyDefaults()
	problems = append(problems, c.validate(lines)...)
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
		return nil, &Error{Problems: problems}
	}
	return c, nil
}

var durationType = reflect.TypeOf(Duration(0))

// decode walks a YAML node into v, checking every key against the struct's
// yaml tags so that a misspelt or miscased key is an error, never ignored.
func decode(n *yaml.Node, v reflect.Value, path string, lines map[string]int) []Problem {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty key (`filters:`) keeps the zero value
	}
	switch {
	case v.Type() == durationType:
		return decodeDuration(n, v, path)
	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return []Problem{{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a mapping, got %s", kindName(n))}}
		}
		return decodeStruct(n, v, path, lines)
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return []Problem{{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a list, got %s", kindName(n))}}
		}
		var problems []Problem
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			problems = append(problems, decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), lines)...)
		}
		v.Set(s)
		return problems
	default:
		return decodeScalar(n, v, path)
	}
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string, lines map[string]int) []Problem {
	fields := map[string]int{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	var problems []Problem
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			problems = append(problems, Problem{Key: key, Line: k.Line, Msg: "unknown key" + suggest(k.Value, fields)})
			continue
		}
		if seen[k.Value] {
			problems = append(problems, Problem{Key: key, Line: k.Line, Msg: "duplicate key"})
			continue
		}
		seen[k.Value] = true
		lines[key] = k.Line
		problems = append(problems, decode(val, v.Field(idx), key, lines)...)
		lines[key] = k.Line
	}
	return problems
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
		if strings.EqualFold(f, key) {
			return fmt.Sprintf(" (did you mean %q? keys are case-sensitive)", f)
		}
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
