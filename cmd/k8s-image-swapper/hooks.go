//go:build !nodeproxy

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/logging"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/probe"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/rollout"
)

// The commands the chart's hooks and tests run, so that the chart needs no image but ours.

// newWaitDaemonSetCmd: the uninstall Job waits for the cleanup DaemonSet with it.
func newWaitDaemonSetCmd() *cobra.Command {
	var (
		namespace, kubeconfig string
		timeout, interval     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "wait-daemonset NAME",
		Short: "Wait until a DaemonSet's pods are updated and available on every node (kubectl rollout status)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := logging.New(cmd.ErrOrStderr(), "info", "json")
			client, err := kubeClient(kubeconfig, "wait-daemonset")
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel func()
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			return rollout.WaitDaemonSet(ctx, client, namespace, args[0], interval, log)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&namespace, "namespace", "n", "default", "the DaemonSet's namespace")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: in-cluster)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long (0: never)")
	f.DurationVar(&interval, "interval", 2*time.Second, "how often to look")
	return cmd
}

// newSleepCmd holds a pod open (the cleanup DaemonSet's pods, after their init container).
func newSleepCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sleep [DURATION|infinity]",
		Short: "Sleep for DURATION (default: until SIGTERM or SIGINT), then exit 0",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d time.Duration
			if len(args) == 1 && args[0] != "infinity" {
				v, err := time.ParseDuration(args[0])
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				d = v
			}
			ctx := cmd.Context()
			if d > 0 {
				var cancel func()
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			<-ctx.Done()
			return nil
		},
	}
}

// newProbeCmd: the `helm test` pod asks the webhook's /healthz through its Service with it.
func newProbeCmd() *cobra.Command {
	var (
		o       probe.Options
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "probe URL",
		Short: "GET URL and exit 0 on a 2xx answer, 1 otherwise",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			body, err := probe.Get(ctx, args[0], o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], body)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.CAFile, "ca-file", "", "PEM CA bundle the server's certificate must chain to (default: the system's)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	return cmd
}
