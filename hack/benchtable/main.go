// Command benchtable turns `go test -bench` output (one result line per
// run, e.g. -count 5) into the markdown table of BENCHMARKS.md: for each
// figure the median and range over the runs, the reference the same run
// measured, and their ratio.
//
//	go run ./hack/benchtable [-load loadavg-samples.txt] bench.txt...
//
// With no file it reads standard input. -load names a file of
// /proc/loadavg lines sampled while the benchmarks ran.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	load := flag.String("load", "", "file of /proc/loadavg lines sampled during the runs")
	flag.Parse()
	if err := run(os.Stdout, *load, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, loadFile string, files []string) error {
	var results []result
	read := func(r io.Reader) error {
		res, err := parse(r)
		results = append(results, res...)
		return err
	}
	if len(files) == 0 {
		if err := read(os.Stdin); err != nil {
			return err
		}
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		err = read(fh)
		fh.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	if len(results) == 0 {
		return errors.New("no benchmark results in the input")
	}
	fmt.Fprintf(w, "%s, %d cores (%s)%s.\n", time.Now().Format("2006-01-02"), runtime.NumCPU(), cpuModel(), loadNote(loadFile))
	fmt.Fprintln(w, "Each figure: median (min–max) of the runs. Ratio: against the reference measured in the same run,"+
		" > 1 = better than the reference (reference time or count ÷ ours; our throughput ÷ the reference's).")
	fmt.Fprintln(w)
	return render(w, build(results))
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// loadNote summarizes the 1-minute load averages sampled in file.
func loadNote(file string) string {
	if file == "" {
		return ""
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	var loads []float64
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			loads = append(loads, v)
		}
	}
	s, ok := summarize(loads)
	if !ok {
		return ""
	}
	return fmt.Sprintf(", load average (1 min) while measuring: first %s, median %s, max %s, last %s (%d samples)",
		num(loads[0]), num(s.med), num(s.max), num(loads[len(loads)-1]), s.n)
}
