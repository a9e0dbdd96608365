// Package filter decides which containers the webhook leaves alone, with the
// original's JMESPath filters evaluated over {obj: <pod>, container: <container>}.
package filter

import (
	"fmt"
	"strings"

	"github.com/jmespath/go-jmespath"
)

// Filter is a compiled list of expressions; a container matching any one is
// filtered out (left as it is).
type Filter struct {
	exprs []expr
}

type expr struct {
	src string
	jp  *jmespath.JMESPath
}

// New compiles the expressions; an invalid one is an error naming it.
func New(exprs []string) (*Filter, error) {
	f := &Filter{}
	for i, s := range exprs {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("filter %d: empty JMESPath expression", i)
		}
		jp, err := compile(s)
		if err != nil {
			return nil, fmt.Errorf("filter %d %q: %w", i, s, err)
		}
		f.exprs = append(f.exprs, expr{src: s, jp: jp})
	}
	return f, nil
}

func compile(s string) (jp *jmespath.JMESPath, err error) {
	defer func() {
		if r := recover(); r != nil {
			jp, err = nil, fmt.Errorf("invalid JMESPath expression: %v", r)
		}
	}()
	return jmespath.Compile(s)
}

// Empty tells whether there is nothing to evaluate, so callers can skip
// building the input document.
func (f *Filter) Empty() bool { return f == nil || len(f.exprs) == 0 }

// Match evaluates the expressions in order over {obj, container}, both
// decoded JSON (maps, slices, strings, float64, bool, nil). It returns the
// first expression that gave exactly true. An expression that fails counts
// as no match; its error is returned with the others so the caller can log
// them.
func (f *Filter) Match(obj, container any) (matched string, errs []error) {
	if f.Empty() {
		return "", nil
	}
	data := map[string]any{"obj": obj, "container": container}
	for _, e := range f.exprs {
		v, err := search(e.jp, data)
		if err != nil {
			errs = append(errs, fmt.Errorf("filter %q: %w", e.src, err))
			continue
		}
		// The original counts only a boolean true as a match.
		if b, ok := v.(bool); ok && b {
			return e.src, errs
		}
	}
	return "", errs
}

// search guards against go-jmespath panicking on unusual data: the input
// is whatever a user put in a pod.
func search(jp *jmespath.JMESPath, data any) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("evaluation panicked: %v", r)
		}
	}()
	return jp.Search(data)
}
