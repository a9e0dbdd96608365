package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// stats are the median and range of one figure over its runs.
type stats struct {
	n             int
	med, min, max float64
}

func summarize(v []float64) (stats, bool) {
	if len(v) == 0 {
		return stats{}, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{n: len(s), med: med, min: s[0], max: s[len(s)-1]}, true
}

// line is one table line, ready to print.
type line struct {
	label, value, ref, refIs, ratio, aim string
	runs                                 int
}

// build pairs every row with the results: the value, the reference and
// the ratio of each run (the ratio from the same result line, so both
// come from the same run), then their medians. Figures of the results
// that no row names get a plain line at the end, so none is lost.
func build(results []result) []line {
	covered := map[string]bool{}
	var out []line
	for _, r := range rows {
		covered[r.bench+" "+r.unit] = true
		if r.ref != "" {
			covered[r.bench+" "+r.ref] = true
		}
		var vals, refs, ratios []float64
		for _, res := range results {
			if res.name != r.bench {
				continue
			}
			v, ok := res.metrics[r.unit]
			if !ok {
				continue
			}
			vals = append(vals, v)
			if ref, ok := res.metrics[r.ref]; ok && r.ref != "" {
				refs = append(refs, ref)
				if q, ok := ratio(v, ref, r.higher); ok {
					ratios = append(ratios, q)
				}
			}
		}
		vs, ok := summarize(vals)
		if !ok {
			continue
		}
		l := line{label: r.label, value: cell(vs), runs: vs.n, ref: "–", refIs: "–", ratio: "–", aim: "–"}
		rq, hasRatio := summarize(ratios)
		if rs, ok := summarize(refs); ok {
			l.ref, l.refIs = cell(rs), r.refIs
		}
		if hasRatio {
			l.ratio = cell(rq)
		}
		if r.aim != nil {
			got := vs.med
			if r.aim.onRatio {
				got = rq.med
			}
			l.aim = r.aim.judge(got, !r.aim.onRatio || hasRatio)
		}
		out = append(out, l)
	}
	// Anything else the benchmarks reported, in the order first seen.
	extra := map[string][]float64{}
	var order []string
	for _, res := range results {
		units := make([]string, 0, len(res.metrics))
		for u := range res.metrics {
			units = append(units, u)
		}
		slices.Sort(units)
		for _, u := range units {
			k := res.name + " " + u
			if covered[k] || skipped[u] {
				continue
			}
			if _, seen := extra[k]; !seen {
				order = append(order, k)
			}
			extra[k] = append(extra[k], res.metrics[u])
		}
	}
	for _, k := range order {
		s, _ := summarize(extra[k])
		out = append(out, line{label: k, value: cell(s), runs: s.n, ref: "–", refIs: "–", ratio: "–", aim: "–"})
	}
	return out
}

// ratio is how the measured figure compares with its reference, > 1 when
// it does better: ref/v for times and counts, v/ref for throughputs.
func ratio(v, ref float64, higher bool) (float64, bool) {
	if higher {
		v, ref = ref, v
	}
	if v == 0 {
		return 0, false
	}
	return ref / v, true
}

func (a *aim) judge(got float64, known bool) string {
	what := fmt.Sprintf("%s %g", map[string]string{"<=": "≤", ">=": "≥", "=": "="}[a.op], a.v)
	if a.onRatio {
		what = "ratio " + what
	}
	if !known {
		return what
	}
	met := false
	switch a.op {
	case "<=":
		met = got <= a.v
	case ">=":
		met = got >= a.v
	case "=":
		met = math.Abs(got-a.v) < 1e-9
	}
	if met {
		return what + ": met"
	}
	return what + ": **missed**"
}

// cell is "median (min–max)", or the median alone when all runs agree.
func cell(s stats) string {
	if s.min == s.max {
		return num(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.med), num(s.min), num(s.max))
}

// num prints about three significant digits, without exponents.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.01:
		return fmt.Sprintf("%.3f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}

// render writes the lines as one markdown table.
func render(w io.Writer, lines []line) error {
	var b strings.Builder
	b.WriteString("| Figure | k8s-image-swapper | Reference | Reference is | Ratio | Aim | Runs |\n")
	b.WriteString("|---|---:|---:|---|---:|---|---:|\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d |\n",
			esc(l.label), l.value, l.ref, esc(l.refIs), l.ratio, l.aim, l.runs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// esc keeps a label from breaking the table.
func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
