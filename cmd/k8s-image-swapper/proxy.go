package main

import (
	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/server"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy/hub"
)

func newProxyCmd() *cobra.Command {
	var listen, metricsAddr, dataDir, spoolDir, hubFlag string
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the node proxy: a pull-through registry containerd uses as a mirror",
		Long: "Serve the OCI distribution read API for the configured source registries\n" +
			"(proxy.registries and source.registries) and the target: from the target's copy\n" +
			"when it has one, else from the source while the copy into the target is made.\n" +
			"With no config file it is a pull-through cache of the public registries into a\n" +
			"local store under ./data (or --data-dir), on 127.0.0.1:7439.\n" +
			"Also serves /metrics, /healthz and /readyz, and with --metrics-address those three\n" +
			"alone on a second address (for scraping a proxy that listens on loopback only).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, file, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if listen != "" {
				// A local target is named after the address that serves it.
				if c.Target.Local.Registry == proxyAddress(c) {
					c.Target.Local.Registry = listen
				}
				c.Proxy.ListenAddress = listen
			}
			if dataDir != "" {
				c.Target.Local.Path = dataDir
			}
			log := newLogger(c)
			ctx := cmd.Context()

			hu, err := hubURL(c, hubFlag, log)
			if err != nil {
				return err
			}
			t, src, err := openTarget(ctx, c, func(s *target.Spec) {
				if targetIsHub(c) && hu != nil {
					// The hub's store: reached at the hub's address, named as the config names it.
					s.Generic.Endpoint = hu.Host
				}
			})
			if err != nil {
				return err
			}
			defer closeTarget(t)
			fo := fetchOptions(c, src, spoolDir, log)
			if hu != nil {
				// Misses go to the hub first, which copies what it serves.
				if fo.Relay, err = hub.NewRelay(hu, target.NewTransport(false), hubTimeout(c)); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			// Serves, copies nothing: in a dry run, or when the target is the
			// hub's store, which only the hub writes.
			api, err := newReadAPI(c, t, src, fo, !c.DryRun && !targetIsHub(c), log)
			if err != nil {
				return err
			}
			defer api.sources.Close()
			api.engine.Start(ctx)
			defer api.engine.Close()
			// With --metrics-address, the registry API stays on the (loopback) proxy address.
			servers := api.servers("proxy", proxyAddress(c), metricsAddr)
			if err := server.Listen(servers...); err != nil {
				return err
			}
			if len(servers) > 1 {
				log.Info("proxy metrics listening", "address", servers[1].Address())
			}
			if file == "" {
				file = "(none: defaults)"
			}
			log.Info("proxy listening", "address", servers[0].Address(), "target", targetName(targetSpec(c)),
				"registries", api.opts.Registries, "onMiss", api.opts.OnMiss, "config", file)
			setDryRun(ctx, c, log)
			return server.Serve(ctx, log, servers...)
		},
	}
	cmd.Flags().StringVar(&listen, "listen-address", "", "address to serve on (default proxy.listenAddress, 127.0.0.1:7439)")
	cmd.Flags().StringVar(&metricsAddr, "metrics-address", "", "also serve /metrics, /healthz and /readyz (and nothing else) on this address, e.g. :7440")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "folder of the local target (default target.local.path, ./data)")
	cmd.Flags().StringVar(&spoolDir, "spool-dir", "", "folder for blobs while they stream from sources (default a temporary folder)")
	cmd.Flags().StringVar(&hubFlag, "hub-url", "", "the hub to ask before the sources (default hub.url)")
	return cmd
}
