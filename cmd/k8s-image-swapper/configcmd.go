package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with the config file"}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check the config file; print every problem with its key and line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, file, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if file == "" {
				file = "(no file: defaults)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid: %s\n", file, c.Summary())
			return nil
		},
	})
	return cmd
}
