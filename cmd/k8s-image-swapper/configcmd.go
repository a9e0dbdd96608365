//go:build !nodeproxy

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with the config file"}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check the config file; print every problem with its key and line",
		Long: "Check the config file strictly: unknown keys are errors here (at start-up they\n" +
			"are warnings, unless --strict-config). Prints every error and warning with its\n" +
			"key and line; exits 2 when there is an error.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, file, err := loadConfigWith(cmd, config.Options{Strict: true})
			if err != nil {
				return err
			}
			if file == "" {
				file = "(no file: defaults)"
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: valid: %s\n", file, summary(c))
			for _, w := range c.Warnings {
				fmt.Fprintf(out, "  warning: %s\n", w)
			}
			return nil
		},
	})
	return cmd
}
