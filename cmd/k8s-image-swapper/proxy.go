package main

import (
	"net/http"

	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/server"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy"
)

func newProxyCmd() *cobra.Command {
	var listen, metricsAddr, dataDir, spoolDir string
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

			t, src, err := openTarget(ctx, c)
			if err != nil {
				return err
			}
			defer closeTarget(t)
			// The source side comes first: the proxy serves from it, and the
			// engine's copies read through it what pulls just fetched.
			sources, err := fetch.New(fetchOptions(c, src, spoolDir, log))
			if err != nil {
				return err
			}
			defer sources.Close()
			engine, err := newEngine(c, t, src, sources.Transport(target.NewTransport(false)), log)
			if err != nil {
				return err
			}
			opts := proxyOptions(c)
			opts.Target, opts.Sources, opts.Mirror, opts.Logger = t, sources, engine, log
			if c.DryRun {
				opts.Mirror = nil // serves, copies nothing
			}
			p, err := proxy.New(opts)
			if err != nil {
				return err
			}
			engine.Start(ctx)
			defer engine.Close()

			mux := http.NewServeMux()
			mux.Handle("/v2/", p)
			mux.Handle("/v2", p)
			server.Health(mux, nil)
			servers := []*server.Server{{Name: "proxy", HTTP: &http.Server{Addr: proxyAddress(c), Handler: mux}}}
			if metricsAddr != "" {
				// Only metrics and health: the registry API stays on the (loopback) proxy address.
				mm := http.NewServeMux()
				server.Health(mm, nil)
				servers = append(servers, &server.Server{Name: "proxy metrics", HTTP: &http.Server{Addr: metricsAddr, Handler: mm}})
			}
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
				"registries", opts.Registries, "onMiss", opts.OnMiss, "config", file)
			setDryRun(ctx, c, log)
			return server.Serve(ctx, log, servers...)
		},
	}
	cmd.Flags().StringVar(&listen, "listen-address", "", "address to serve on (default proxy.listenAddress, 127.0.0.1:7439)")
	cmd.Flags().StringVar(&metricsAddr, "metrics-address", "", "also serve /metrics, /healthz and /readyz (and nothing else) on this address, e.g. :7440")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "folder of the local target (default target.local.path, ./data)")
	cmd.Flags().StringVar(&spoolDir, "spool-dir", "", "folder for blobs while they stream from sources (default a temporary folder)")
	return cmd
}
