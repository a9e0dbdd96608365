//go:build !nodeproxy

package main

import (
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/filter"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/pullsecrets"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy/hub"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook"
)

const webhookLong = "Serve POST /webhook (admission.k8s.io/v1 and v1beta1 AdmissionReviews for Pods\n" +
	"and pods/ephemeralcontainers), / (200, as the original), /healthz, /readyz and\n" +
	"/metrics. HTTPS when --tls-cert-file and --tls-key-file are given (reloaded when they change)."

func newWebhookCmd() *cobra.Command {
	w := &webhookFlags{}
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Run the mutating admission webhook that mirrors pods' images and points pods at the mirror",
		Long:  webhookLong,
		Args:  cobra.NoArgs,
		RunE:  w.run,
	}
	w.add(cmd.Flags())
	return cmd
}

// webhookFlags are the webhook's flags, on `webhook` and on the root
// command (which runs the webhook, as the original's did).
type webhookFlags struct {
	listen, certFile, keyFile, kubeconfig string
	hubURL, hubToken                      string
	dryRun, secretReader, unreachableOK   bool
	secretNames                           []string
}

func (w *webhookFlags) add(f *pflag.FlagSet) {
	f.StringVar(&w.listen, "listen-address", "", "address to serve on (default: listenAddress from the config, else :8443)")
	f.StringVar(&w.certFile, "tls-cert-file", "", "TLS certificate file; with --tls-key-file serves HTTPS")
	f.StringVar(&w.keyFile, "tls-key-file", "", "TLS private key file")
	f.BoolVar(&w.dryRun, "dry-run", false, "log and count decisions, copy and patch nothing (the config's dryRun)")
	f.BoolVar(&w.secretReader, "secret-reader", false, "read pods' imagePullSecrets for copies (the config's secretReader; when neither is set: on in a cluster, as the original)")
	f.StringSliceVar(&w.secretNames, "secret-names", nil, "with --secret-reader, watch only secrets of these names (the chart's secretReader.secretNames)")
	f.StringVar(&w.kubeconfig, "kubeconfig", "", "kubeconfig for --secret-reader (default: in-cluster)")
	f.StringVar(&w.hubURL, "hub-url", "", "the hub to ask whether the target has an image, and to copy it (default hub.url)")
	f.StringVar(&w.hubToken, "hub-token-file", "", "a ServiceAccount token for the audience "+hub.Audience+" that each question to the hub carries, read again each time (the chart's projected token)")
	f.BoolVar(&w.unreachableOK, "target-unreachable-ok", false, "report ready without waiting for the target to answer")
}

func (w *webhookFlags) run(cmd *cobra.Command, _ []string) error {
	c, file, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	if f.Changed("listen-address") {
		c.ListenAddress = w.listen
	}
	if f.Changed("tls-cert-file") {
		c.TLSCertFile = w.certFile
	}
	if f.Changed("tls-key-file") {
		c.TLSKeyFile = w.keyFile
	}
	if f.Changed("dry-run") {
		c.DryRun = w.dryRun
	}
	if f.Changed("secret-reader") {
		c.SecretReader = w.secretReader
	}
	log := newLogger(c)
	if file != "" {
		log.Info("using config file", "file", file)
	}
	if !f.Changed("secret-reader") && !c.IsSet("secretReader") && inCluster() {
		// The original read pods' pull secrets whenever it ran in a cluster;
		// its chart passes no flag for it. What RBAC allows is found at start.
		c.SecretReader = true
		log.Info("secret reader on: running in a cluster with no secretReader setting, as the original")
	}
	ctx := cmd.Context()

	t, engine, err := openEngine(ctx, c, log)
	if err != nil {
		return err
	}
	defer closeTarget(t)
	opts := webhookOptions(c)
	opts.Mirror, opts.Mapper, opts.Logger = engine, t.Mapper(), log
	// Who may read a private image is asked of its source, never of the hub:
	// the answer is about the pod's credentials there.
	opts.Access = engine.Access()
	hu, err := hubURL(c, w.hubURL, log)
	if err != nil {
		return err
	}
	if hu != nil {
		// Checks and copies go through the hub, one for the whole cluster;
		// this engine answers when the hub does not, unless the target is the
		// hub's own store, which only the hub writes.
		var local hub.Mirror = engine
		if targetIsHub(c) {
			local = nil
		}
		var token func() (string, error)
		if w.hubToken != "" {
			token = hub.TokenFile(w.hubToken)
		}
		opts.Mirror = hub.NewClient(hu, target.NewTransport(false), hubTimeout(c), local, token, log)
	}

	ready := &webhook.Readiness{}
	if c.SecretReader {
		ps, err := newPullSecrets(w.kubeconfig, w.secretNames, log)
		if err != nil {
			return err
		}
		opts.PullSecrets = ps
		ps.Start(ctx)
		ready.Wait("pull-secrets")
		go func() {
			// Not ready until the caches RBAC allows are filled: copies
			// would miss credentials. Other errors show in the client's log.
			if err := ps.WaitForSync(ctx); err == nil {
				ready.Done("pull-secrets")
				log.Info("pull secret caches synced")
			}
		}()
	}
	h, err := webhook.New(opts)
	if err != nil {
		return err
	}
	if !w.unreachableOK {
		go webhook.WaitForTarget(ctx, t, ready, 5*time.Second, log)
	}
	srv, err := webhook.NewServer(webhook.ServerOptions{Addr: c.ListenAddress, CertFile: c.TLSCertFile,
		KeyFile: c.TLSKeyFile, Webhook: h, Readiness: ready, DryRun: c.DryRun, Logger: log})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	engine.Start(ctx)
	defer engine.Close()
	log.Info("webhook starting", "config", summary(c))
	setDryRun(ctx, c, log)
	return srv.ListenAndServe(ctx)
}

// inCluster tells whether the process runs in a pod with an API token.
func inCluster() bool {
	_, err := rest.InClusterConfig()
	return err == nil
}

// newPullSecrets connects to the cluster (in-cluster unless kubeconfig).
func newPullSecrets(kubeconfig string, names []string, log *slog.Logger) (*pullsecrets.Keychains, error) {
	client, err := kubeClient(kubeconfig, "secret reader")
	if err != nil {
		return nil, err
	}
	return pullsecrets.New(client, "", 10*time.Minute, log, names...), nil
}

// webhookOptions are the policies, dry run and filters of c; the caller
// sets Mirror, Mapper, Access, PullSecrets and Logger. Filters that do not compile
// are kept, failing when reached, as in the original (the config warned
// about them).
func webhookOptions(c *config.Config) webhook.Options {
	exprs := make([]string, len(c.Source.Filters))
	for i, f := range c.Source.Filters {
		exprs[i] = f.JMESPath
	}
	return webhook.Options{
		SwapPolicy:    c.ImageSwapPolicy,
		CopyPolicy:    c.ImageCopyPolicy,
		CopyDeadline:  c.ImageCopyDeadline.D(),
		DryRun:        c.DryRun,
		TagTTL:        c.Proxy.TagTTL.D(),
		Filter:        filter.New(exprs),
		PrivateImages: c.Source.PrivateImages,
	}
}
