//go:build !nodeproxy

package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/peers"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/peers/endpointslices"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/server"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/tokenreview"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy/hub"
)

func newHubCmd() *cobra.Command {
	var (
		listen, metricsAddr, dataDir, spoolDir string
		self, service, namespace, portName     string
		kubeconfig                             string
		staticPeers, callers                   []string
	)
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Run the hub: the cluster's mirror service that node proxies and the webhook ask first",
		Long: "Serve the node proxy's read API (?ns= routing, target first, the configured sources\n" +
			"only) for the whole cluster: a miss on many nodes is one fetch from the source and one\n" +
			"copy into the target. Replicas (--peers, or the ready endpoints of --peers-service)\n" +
			"split repositories by rendezvous hashing and pass a miss to the repository's owner.\n" +
			"Also serves the webhook's questions (/hub/v1/exists, /hub/v1/copy), /metrics,\n" +
			"/healthz and /readyz. With target.type local it holds the embedded store.\n" +
			"With --api-callers, /hub/v1/ answers only requests with a ServiceAccount token of\n" +
			"theirs for the audience " + hub.Audience + " (checked with the API server's TokenReview).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, file, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			addr := cmp.Or(listen, c.Hub.ListenAddress, hub.DefaultAddress)
			if dataDir != "" {
				c.Target.Local.Path = dataDir
			}
			if c.Target.Local.Registry == "" {
				// The store is named after the address that serves it.
				c.Target.Local.Registry = reachable(addr)
			}
			log := newLogger(c)
			ctx := cmd.Context()

			set := peers.New(cmp.Or(self, podAddress(addr), reachable(addr)), staticPeers)
			var relay fetch.Relay
			if len(staticPeers) > 0 || service != "" {
				relay = hub.NewPeerRelay(set, target.NewTransport(false), hubTimeout(c))
			}
			if service != "" {
				if err := watchPeers(ctx, kubeconfig, cmp.Or(namespace, podNamespace()), service, portName, set, log); err != nil {
					return err
				}
			}
			guard, err := apiGuard(kubeconfig, callers, log)
			if err != nil {
				return err
			}

			t, src, err := openTarget(ctx, c)
			if err != nil {
				return err
			}
			defer closeTarget(t)
			fo := fetchOptions(c, src, spoolDir, log)
			fo.Relay = relay
			api, err := newReadAPI(c, t, src, fo, !c.DryRun, log)
			if err != nil {
				return err
			}
			defer api.sources.Close()
			api.engine.Start(ctx)
			defer api.engine.Close()
			var owners *peers.Set
			if relay != nil {
				owners = set
			}
			servers := api.servers("hub", addr, metricsAddr, func(mux *http.ServeMux) {
				questions := http.NewServeMux()
				hub.NewAPI(api.engine, owners, target.NewTransport(false), log).Register(questions)
				mux.Handle("/hub/", guard(questions))
			})
			if err := server.Listen(servers...); err != nil {
				return err
			}
			log.Info("hub listening", "address", servers[0].Address(), "self", set.Self(), "peers", set.Addrs(),
				"target", targetName(targetSpec(c)), "registries", api.opts.Registries, "config", cmp.Or(file, "(none: defaults)"))
			setDryRun(ctx, c, log)
			return server.Serve(ctx, log, servers...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen-address", "", "address to serve on (default hub.listenAddress, :7440)")
	f.StringVar(&metricsAddr, "metrics-address", "", "also serve /metrics, /healthz and /readyz (and nothing else) on this address")
	f.StringVar(&dataDir, "data-dir", "", "folder of the local target (default target.local.path, ./data)")
	f.StringVar(&spoolDir, "spool-dir", "", "folder for blobs while they stream from sources (default a temporary folder)")
	f.StringSliceVar(&staticPeers, "peers", nil, "the hub replicas as HOST:PORT, this one among them (outside a cluster)")
	f.StringVar(&self, "self", "", "this replica's HOST:PORT as the others reach it (default $POD_IP and the listen port)")
	f.StringVar(&service, "peers-service", "", "find the replicas in the ready endpoints of this Service's EndpointSlices")
	f.StringVar(&namespace, "namespace", "", "namespace of --peers-service (default the pod's)")
	f.StringVar(&portName, "peers-port", "http", "name of the Service port the replicas serve on")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig for --peers-service and --api-callers (default: in-cluster)")
	f.StringSliceVar(&callers, "api-callers", nil, "who may ask /hub/v1/ (have the hub copy an image with its credentials): ServiceAccount users, system:serviceaccount:NAMESPACE:NAME (default anyone who reaches the hub, warned)")
	return cmd
}

// reachable is addr with a host others can use when it has none (":7440").
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" && host != "0.0.0.0" && host != "::" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// podAddress is $POD_IP (the downward API) with addr's port; "" outside a pod.
func podAddress(addr string) string {
	ip := os.Getenv("POD_IP")
	_, port, err := net.SplitHostPort(addr)
	if ip == "" || err != nil {
		return ""
	}
	return net.JoinHostPort(ip, port)
}

// podNamespace is the namespace of the pod this runs in.
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, _ := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	return strings.TrimSpace(string(b))
}

// apiGuard lets through to the hub's API only the callers' requests; with
// none given, every request (the API copies with the hub's credentials, so
// a hub that others than the webhook reach must be given them).
func apiGuard(kubeconfig string, callers []string, log *slog.Logger) (func(http.Handler) http.Handler, error) {
	if len(callers) == 0 {
		log.Warn("the hub's API answers anyone who reaches it: give --api-callers (the chart does)")
		return func(h http.Handler) http.Handler { return h }, nil
	}
	for _, c := range callers {
		rest, sa := strings.CutPrefix(c, "system:serviceaccount:")
		if ns, name, ok := strings.Cut(rest, ":"); !sa || !ok || ns == "" || name == "" || strings.Contains(name, ":") {
			return nil, &exitError{code: 2, err: fmt.Errorf("--api-callers: %q is not system:serviceaccount:NAMESPACE:NAME", c)}
		}
	}
	client, err := kubeClient(kubeconfig, "hub api callers")
	if err != nil {
		return nil, err
	}
	return tokenreview.New(client.AuthenticationV1().TokenReviews(), hub.Audience, callers, log).Require, nil
}

// kubeClient connects to the cluster (in-cluster unless kubeconfig), for what.
func kubeClient(kubeconfig, what string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("%s: kubernetes client config: %w", what, err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return client, nil
}

// watchPeers keeps set to the ready endpoints of the Service's EndpointSlices.
func watchPeers(ctx context.Context, kubeconfig, namespace, service, port string, set *peers.Set, log *slog.Logger) error {
	client, err := kubeClient(kubeconfig, "hub peers")
	if err != nil {
		return err
	}
	return endpointslices.Watch(ctx, client, namespace, service, port, set, log)
}
