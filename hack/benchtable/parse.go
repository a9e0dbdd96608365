package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// result is one line of `go test -bench` output: one run of a benchmark.
type result struct {
	name    string             // without the -GOMAXPROCS suffix
	metrics map[string]float64 // by unit
}

var (
	// nameRE is a benchmark name at the start of a line, with the
	// -GOMAXPROCS suffix apart.
	nameRE = regexp.MustCompile(`^(Benchmark\S*?)(-\d+)?(\s|$)`)
	// valuesRE is the iterations and value/unit pairs of a result.
	valuesRE = regexp.MustCompile(`^\s*(\d+)\s+(\S+\s+\S+(\s+\S+\s+\S+)*)\s*$`)
)

// parse reads benchmark results. A result whose name and figures were
// split by other output written during the run (a child process's log on
// the same stderr) is joined back: figures belong to the last name seen.
func parse(r io.Reader) ([]result, error) {
	var out []result
	pending := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest := line
		if m := nameRE.FindStringSubmatch(line); m != nil {
			pending, rest = m[1], line[len(m[1])+len(m[2]):]
		}
		if pending == "" {
			continue
		}
		m := valuesRE.FindStringSubmatch(rest)
		if m == nil {
			continue
		}
		metrics, ok := pairs(strings.Fields(m[2]))
		if !ok {
			continue
		}
		out = append(out, result{name: pending, metrics: metrics})
		pending = ""
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	return out, nil
}

// pairs reads "value unit value unit ..."; ok is false for anything else.
func pairs(f []string) (map[string]float64, bool) {
	if len(f) == 0 || len(f)%2 != 0 {
		return nil, false
	}
	m := map[string]float64{}
	for i := 0; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil, false
		}
		m[f[i+1]] = v
	}
	return m, true
}
