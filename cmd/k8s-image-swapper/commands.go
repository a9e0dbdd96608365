//go:build !nodeproxy

package main

import "github.com/spf13/cobra"

// addCommands gives root every command. With no command it runs the
// webhook with the original k8s-image-swapper's flags, as the original
// chart starts it (no arguments at all: the webhook with the defaults).
func addCommands(root *cobra.Command) {
	w := &webhookFlags{}
	root.Long = "Mirror the images a Kubernetes cluster uses into a registry it owns.\n\n" +
		"With no command, runs the webhook (as `webhook`), taking the original\n" +
		"k8s-image-swapper's flags. " + webhookLong
	root.Args = cobra.NoArgs
	root.RunE = w.run
	w.add(root.Flags())
	root.AddCommand(
		newWebhookCmd(),
		newProxyCmd(),
		newHubCmd(),
		newContainerdConfigCmd(),
		newCopyCmd(),
		newConfigCmd(),
		newVersionCmd(),
		newWaitDaemonSetCmd(),
		newSleepCmd(),
		newProbeCmd(),
	)
}
