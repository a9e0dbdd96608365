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
	err error // the expression does not compile
}

// New compiles the expressions. One that does not compile is kept, as the
// original kept it: it fails each time it is reached (see Match).
func New(exprs []string) *Filter {
	f := &Filter{}
	for i, s := range exprs {
		s = strings.TrimSpace(s)
		e := expr{src: s}
		if s == "" {
			e.err = fmt.Errorf("filter %d: empty JMESPath expression", i)
		} else if jp, err := compile(s); err != nil {
			e.err = fmt.Errorf("filter %d %q: %w", i, s, err)
		} else {
			e.jp = jp
		}
		f.exprs = append(f.exprs, e)
	}
	return f
}

// Check tells why expr does not compile, as New compiles it; nil when it
// does. Config validation asks it.
func Check(expr string) error {
	_, err := compile(expr)
	return err
}

// compile guards against go-jmespath panicking on an odd expression.
func compile(s string) (jp *jmespath.JMESPath, err error) {
	defer func() {
		if r := recover(); r != nil {
			jp, err = nil, fmt.Errorf("compiling panicked: %v", r)
		}
	}()
	return jmespath.Compile(s)
}

// Empty tells whether there is nothing to evaluate, so callers can skip
// building the input document.
func (f *Filter) Empty() bool { return f == nil || len(f.exprs) == 0 }

// Match evaluates the expressions in order over {obj, container}, both
// decoded JSON (maps, slices, strings, float64, bool, nil), and returns
// the first that gave exactly true. As in the original, an expression that
// fails (or does not compile) ends the evaluation with no match: the
// container is not filtered, and the error is returned for the log.
func (f *Filter) Match(obj, container any) (matched string, err error) {
	if f.Empty() {
		return "", nil
	}
	data := map[string]any{"obj": obj, "container": container}
	for _, e := range f.exprs {
		if e.err != nil {
			return "", e.err
		}
		v, err := search(e.jp, data)
		if err != nil {
			return "", fmt.Errorf("filter %q: %w", e.src, err)
		}
		// The original counts only a boolean true as a match.
		if b, ok := v.(bool); ok && b {
			return e.src, nil
		}
	}
	return "", nil
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
