//go:build nodeproxy

package main

import "github.com/spf13/cobra"

// addCommands gives root the node proxy alone. Built with -tags nodeproxy
// this is k8s-image-swapper-proxy, the binary the chart's proxy DaemonSet
// runs: it links no Kubernetes client, webhook or hub server, whose
// packages' init code and data a process on every node would otherwise map
// (BENCHMARKS.md, peak RSS).
func addCommands(root *cobra.Command) {
	root.Use = "k8s-image-swapper-proxy"
	root.Long = "The node proxy of k8s-image-swapper alone: `proxy` takes the same flags and\n" +
		"config file as `k8s-image-swapper proxy`."
	root.AddCommand(newProxyCmd(), newVersionCmd())
}
