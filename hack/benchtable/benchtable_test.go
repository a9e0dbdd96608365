package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/k8s-image-swapper/k8s-image-swapper/proxy
cpu: AMD EPYC
BenchmarkPull-2   	       1	7964940648 ns/op	         1.000 cold-direct-origin-B/image-B	         0.5 cold-direct-wall-s	         1.000 cold-origin-B/image-B	         2.0 cold-wall-s	       500 warm-MiB/s	       600 warm-direct-MiB/s
BenchmarkPull-2   	time=2025-01-01T00:00:00Z level=WARN msg="streaming without sharing"
       1	7964940648 ns/op	         1.000 cold-direct-origin-B/image-B	         1.0 cold-direct-wall-s	         1.000 cold-origin-B/image-B	         1.0 cold-wall-s	       600 warm-MiB/s	       600 warm-direct-MiB/s
--- BENCH: BenchmarkPull-2
    bench_more_test.go:1: a log line 1 2
BenchmarkPull-2   	       1	7964940648 ns/op	         1.000 cold-direct-origin-B/image-B	         1.0 cold-direct-wall-s	         1.000 cold-origin-B/image-B	         4.0 cold-wall-s	       540 warm-MiB/s	       600 warm-direct-MiB/s
PASS
pkg: github.com/k8s-image-swapper/k8s-image-swapper/webhook
BenchmarkAdmission-2   	       1	   1685686 ns/op	        73.72 max_ms	         0.5 p50_ms	        6 p99_ms	        40.17 ref-max_ms	         0.3 ref-p50_ms	         4 ref-p99_ms	       200.1 reviews/s	3 extra-unit
BenchmarkOther/size=1-2 	     100	      1000 ns/op	  12.5 MB/s
ok  	github.com/k8s-image-swapper/k8s-image-swapper/webhook	22.460s
`

// The parser reads standard result lines, joins a result split by a
// child's log line, strips -GOMAXPROCS and ignores everything else.
func TestParse(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res {
		names = append(names, r.name)
	}
	want := "BenchmarkPull BenchmarkPull BenchmarkPull BenchmarkAdmission BenchmarkOther/size=1"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("names %q, want %q", got, want)
	}
	if v := res[1].metrics["cold-wall-s"]; v != 1.0 {
		t.Errorf("split result: cold-wall-s = %v, want 1 (figures of the line after the log)", v)
	}
	if v := res[3].metrics["p99_ms"]; v != 6 {
		t.Errorf("p99_ms = %v, want 6", v)
	}
}

func TestSummarize(t *testing.T) {
	s, _ := summarize([]float64{5, 1, 3})
	if s.med != 3 || s.min != 1 || s.max != 5 || s.n != 3 {
		t.Errorf("odd: %+v", s)
	}
	s, _ = summarize([]float64{4, 1, 3, 2})
	if s.med != 2.5 {
		t.Errorf("even median %v, want 2.5", s.med)
	}
	if _, ok := summarize(nil); ok {
		t.Error("no values gave a summary")
	}
}

// Ratios are taken per run (same result line) before the median, not as
// the ratio of the medians; aims are judged on the right figure.
func TestBuild(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	byLabel := map[string]line{}
	var order []string
	for _, l := range build(res) {
		byLabel[l.label] = l
		order = append(order, l.label)
	}
	cold := byLabel[rows[0].label]
	// Per run: 0.5/2 = 0.25, 1/1 = 1, 1/4 = 0.25; median 0.25. The ratio
	// of the medians would be 1/2 = 0.5.
	if cold.value != "2.00 (1.00–4.00)" || cold.ref != "1.00 (0.500–1.00)" || cold.ratio != "0.250 (0.250–1.00)" || cold.runs != 3 {
		t.Errorf("cold pull line: %+v", cold)
	}
	warm := byLabel[rows[slices.IndexFunc(rows, func(r row) bool { return r.unit == "warm-MiB/s" })].label]
	// Throughput: ours ÷ reference: 500/600, 1, 540/600 = 0.9; below 1.
	if warm.ratio != "0.900 (0.833–1.00)" || !strings.Contains(warm.aim, "missed") {
		t.Errorf("warm pull line: %+v", warm)
	}
	var p99 line
	for _, l := range byLabel {
		if strings.HasPrefix(l.label, "Admission p99") {
			p99 = l
		}
	}
	if p99.value != "6.00" || p99.ratio != "0.667" || p99.aim != "≤ 5: **missed**" {
		t.Errorf("p99 line: %+v", p99)
	}
	if _, ok := byLabel["BenchmarkAdmission extra-unit"]; !ok {
		t.Errorf("a figure no row names was dropped: %v", order)
	}
	if _, ok := byLabel["BenchmarkOther/size=1 MB/s"]; ok {
		t.Error("the testing package's MB/s made a line")
	}
	for _, l := range order {
		if strings.Contains(l, "10 clients") {
			t.Errorf("a line with no results: %q", l)
		}
	}
}

// run prints a caption and exactly one table, with the load samples.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	in, load := filepath.Join(dir, "bench.txt"), filepath.Join(dir, "load.txt")
	if err := os.WriteFile(in, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(load, []byte("1.50 1.00 0.50 1/100 42\n3.00 1.2 0.6 2/100 43\n2.00 1.2 0.6 2/100 44\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(&out, load, []string{in}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.Contains(text, "first 1.50, median 2.00, max 3.00, last 2.00 (3 samples)") {
		t.Errorf("load note missing:\n%s", text)
	}
	if n := strings.Count(text, "| Figure |"); n != 1 {
		t.Errorf("%d table headers, want 1:\n%s", n, text)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	inTable, tables := false, 0
	for _, l := range lines {
		if strings.HasPrefix(l, "|") && !inTable {
			tables++
		}
		inTable = strings.HasPrefix(l, "|")
	}
	if tables != 1 {
		t.Errorf("%d tables, want 1:\n%s", tables, text)
	}
	if err := run(&out, "", []string{filepath.Join(dir, "missing.txt")}); err == nil {
		t.Error("a missing input file gave no error")
	}
	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, []byte("PASS\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(&out, "", []string{empty}); err == nil {
		t.Error("input without results gave no error")
	}
}
