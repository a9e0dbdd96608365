//go:build !nodeproxy

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/progress"
)

func newCopyCmd() *cobra.Command {
	var timeout time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "copy IMAGE...",
		Short: "Mirror images into the target now",
		Long: "Mirror each image into the configured target now (the force policy) and print\n" +
			"SOURCE -> TARGET@DIGEST for each. Exits non-zero naming each image that failed.\n" +
			"Progress (bytes written of total, rate) and a summary go to stderr: a line per image\n" +
			"that redraws itself on a terminal, plain lines otherwise; --quiet prints none.",
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
			var show *progress.Printer
			if !quiet {
				show = progress.New(cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr()))
				defer show.Summary()
			}
			var failed []string
			for _, a := range args {
				src, err := imageref.Parse(a)
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", a, err))
					continue
				}
				req := mirror.Request{Source: src}
				var im *progress.Image
				if show != nil {
					im = show.Start(src.String())
					req.Progress = im.Update
				}
				res, err := engine.Copy(ctx, req)
				if im != nil {
					im.Done(res.Present, err)
				}
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
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print no progress, only SOURCE -> TARGET@DIGEST")
	return cmd
}

// isTerminal tells whether w is a terminal, where progress lines redraw themselves.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
