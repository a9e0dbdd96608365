package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
)

func newCopyCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "copy IMAGE...",
		Short: "Mirror images into the target now",
		Long: "Mirror each image into the configured target now (the force policy) and print\n" +
			"SOURCE -> TARGET@DIGEST for each. Exits non-zero naming each image that failed.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			log := newLogger(c)
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			t, engine, err := openEngine(ctx, c, log)
			if err != nil {
				return err
			}
			defer closeTarget(t)
			var failed []string
			for _, a := range args {
				src, err := imageref.Parse(a)
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", a, err))
					continue
				}
				res, err := engine.Copy(ctx, mirror.Request{Source: src})
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", a, err))
					continue
				}
				note := ""
				if res.Present {
					note = " (already present)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s@%s%s\n", src, res.Target.Name(), res.Digest, note)
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d image(s) failed:\n  %s", len(failed), len(args), strings.Join(failed, "\n  "))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (default: no limit)")
	return cmd
}
