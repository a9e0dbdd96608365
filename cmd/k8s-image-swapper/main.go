// Command k8s-image-swapper mirrors the images a Kubernetes cluster uses
// into a registry it owns: a mutating webhook, a node proxy and tools.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/profiling"
)

// Set at build time with -ldflags "-X main.version=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries an exit code: 1 for failures, 2 for bad input.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}

// newRoot is the command line: the flags every command takes, and the
// commands of this build (commands.go, or commands_nodeproxy.go).
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "k8s-image-swapper",
		Short:         "Mirror the images a Kubernetes cluster uses into a registry it owns",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.String("config", "", "config file (default .k8s-image-swapper.yml in the working folder or $HOME)")
	pf.String("log-level", "", "trace, debug, info, warn, error, fatal or panic (default: logLevel from the config, else info)")
	pf.String("log-format", "", "json or console (default: logFormat from the config, else json)")
	pf.Bool("strict-config", false, "refuse a config file with unknown keys (by default they are warnings, as the original ignored them)")
	addProfileFlags(root)
	addCommands(root)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "k8s-image-swapper %s (commit %s)\n", version, commit)
		},
	}
}

// addProfileFlags gives every command hidden flags that write pprof profiles
// of its run (written when it returns: a server on SIGTERM), for benchmarks
// and for finding where time goes on a node.
func addProfileFlags(root *cobra.Command) {
	var o profiling.Options
	pf := root.PersistentFlags()
	for _, f := range []struct {
		dst  *string
		name string
	}{{&o.CPU, "cpu-profile"}, {&o.Block, "block-profile"}, {&o.Mutex, "mutex-profile"}, {&o.Heap, "heap-profile"}} {
		pf.StringVar(f.dst, f.name, "", "write a pprof "+f.name+" of this run to this file")
		_ = pf.MarkHidden(f.name)
	}
	var stop func() error
	root.PersistentPreRunE = func(*cobra.Command, []string) (err error) {
		stop, err = profiling.Start(o)
		return err
	}
	root.PersistentPostRunE = func(*cobra.Command, []string) error { return stop() }
}
