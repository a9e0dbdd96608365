// Package profiling writes pprof profiles of a whole command run to files,
// so a proxy, hub or copy can be profiled as it runs in a benchmark or on
// a node, without a debug listener anyone could reach.
package profiling

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Options names the files to write; empty names are not written.
type Options struct {
	CPU   string // CPU profile, sampled from Start to Stop
	Block string // where goroutines waited (channels, locks, I/O waits in syscalls)
	Mutex string // contended locks
	Heap  string // live heap at Stop
}

// Start begins the profiles o names. The returned stop writes them; it is
// safe to call when Start failed.
func Start(o Options) (stop func() error, err error) {
	if o == (Options{}) {
		return func() error { return nil }, nil
	}
	var cpu *os.File
	if o.CPU != "" {
		if cpu, err = os.Create(o.CPU); err != nil {
			return func() error { return nil }, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return func() error { return nil }, fmt.Errorf("cpu profile: %w", err)
		}
	}
	if o.Block != "" {
		runtime.SetBlockProfileRate(10_000) // one sample per 10µs blocked
	}
	if o.Mutex != "" {
		runtime.SetMutexProfileFraction(10)
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		errs = append(errs, write(o.Block, "block"), write(o.Mutex, "mutex"), write(o.Heap, "heap"))
		return errors.Join(errs...)
	}, nil
}

func write(path, name string) error {
	if path == "" {
		return nil
	}
	if name == "heap" {
		runtime.GC() // the live heap, as of now
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s profile: %w", name, err)
	}
	return f.Close()
}
