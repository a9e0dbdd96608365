//go:build !nodeproxy

package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/k8s-image-swapper/k8s-image-swapper/daemonset/containerdcfg"
	"github.com/k8s-image-swapper/k8s-image-swapper/daemonset/hoststoml"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy"
)

func newContainerdConfigCmd() *cobra.Command {
	var (
		o         hoststoml.Options
		plainHTTP []string
		cleanup   bool
		check     bool

		containerdVersion string
		hubFlag           string
	)
	cmd := &cobra.Command{
		Use:   "containerd-config",
		Short: "Point containerd at the node proxy through hosts.toml files",
		Long: "Writes <certs-dir>/<host>/hosts.toml for each registry the proxy serves and for the\n" +
			"target, with the proxy first and the origin as server, so containerd falls back to the\n" +
			"origin when the proxy is down. Existing files are kept and backed up; --cleanup restores\n" +
			"them byte for byte, and so does a dry run (dryRun: true), which writes none.\n" +
			"--check only reports whether containerd's config reads hosts.toml.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			out := cmd.OutOrStdout()
			if o.ContainerdMajor, err = containerdcfg.ParseMajor(containerdVersion); err != nil {
				return &exitError{code: 2, err: err}
			}
			if check {
				return runCheck(out, o)
			}
			c, _, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			o.Logger = newLogger(c)
			o.Hosts = hostsFor(c)
			if hu, err := hubURL(c, hubFlag, o.Logger); err != nil {
				return err
			} else if hu != nil && targetIsHub(c) {
				// The target is the hub's store: without the proxy, containerd
				// reaches the hub at its Service's address, not by cluster DNS.
				for i := range o.Hosts {
					if strings.EqualFold(o.Hosts[i].Name, c.Target.Host()) {
						o.Hosts[i].Server = hu.Scheme + "://" + hu.Host
					}
				}
			}
			o.PlainHTTP = map[string]bool{}
			for _, h := range plainHTTP {
				o.PlainHTTP[h] = true
			}
			var res hoststoml.Result
			if c.DryRun && !cleanup {
				// A dry run changes nothing on the node: containerd keeps
				// pulling from the origins, and files an earlier run wrote
				// are undone.
				fmt.Fprintln(out, "dry run (dryRun: true): no hosts.toml written; containerd pulls from the origins")
				o.Logger.Warn("dry run (dryRun: true): containerd is not pointed at the proxy; hosts.toml files written before are restored")
				cleanup = true
			}
			if cleanup {
				res, err = hoststoml.Cleanup(cmd.Context(), o)
			} else {
				res, err = hoststoml.Apply(cmd.Context(), o)
			}
			for _, p := range res.Written {
				fmt.Fprintln(out, "written:", p)
			}
			for _, p := range res.Unchanged {
				fmt.Fprintln(out, "unchanged:", p)
			}
			for _, p := range res.Restored {
				fmt.Fprintln(out, "restored:", p)
			}
			for _, p := range res.Removed {
				fmt.Fprintln(out, "removed:", p)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.CertsDir, "certs-dir", "/etc/containerd/certs.d", "containerd's hosts.toml folder as this process sees it")
	f.StringVar(&o.ContainerdCertsDir, "containerd-certs-dir", "", "the same folder as containerd on the node names it (default --certs-dir)")
	f.StringVar(&o.ProxyURL, "proxy-url", "http://"+proxy.DefaultAddress, "the node proxy's URL")
	f.DurationVar(&o.DialTimeout, "dial-timeout", hoststoml.DefaultDialTimeout, "how long containerd tries the proxy before the origin")
	f.StringVar(&o.ContainerdConfig, "containerd-config", "", "containerd's config.toml: refuse to write unless its config_path covers the certs folder")
	f.StringVar(&containerdVersion, "containerd-version", "", "containerd's version on the node (2.1.4, v1.7.27, containerd://2.1.4 as the Node reports it): a version 2 config with a config_path list works on 1.x and is ignored by 2.x; empty: unknown")
	f.StringSliceVar(&plainHTTP, "plain-http", nil, "registry hosts whose origin speaks plain http")
	f.BoolVar(&cleanup, "cleanup", false, "undo: restore the files that were there, remove the ones written")
	f.BoolVar(&check, "check", false, "only check --containerd-config and report what a node needs")
	f.StringVar(&hubFlag, "hub-url", "", "the hub's URL; when the target is the hub's store, containerd's fallback without the proxy (default hub.url)")
	return cmd
}

// runCheck reports how containerd reads hosts.toml and, when it would not read them from
// the certs folder, fails with what the node needs.
func runCheck(out io.Writer, o hoststoml.Options) error {
	if o.ContainerdConfig == "" {
		return &exitError{code: 2, err: fmt.Errorf("--check needs --containerd-config")}
	}
	certs := o.ContainerdCertsDir
	if certs == "" {
		certs = o.CertsDir
	}
	r, err := containerdcfg.Check(o.ContainerdConfig, o.ContainerdMajor)
	if r.Version != 0 {
		fmt.Fprintf(out, "%s: version %d, CRI pulls: %s\n", r.Path, r.Version, r.Pulls())
	}
	if err == nil {
		fmt.Fprintf(out, "config_path %q (%s) in [%s], searched: %s\n", r.ConfigPath, r.SetIn, r.Section, strings.Join(r.Dirs, ", "))
		for _, w := range r.Warnings {
			fmt.Fprintln(out, "warning:", w)
		}
		if r.Covers(certs) {
			fmt.Fprintf(out, "ok: containerd reads hosts.toml from %s\n", certs)
			return nil
		}
		err = fmt.Errorf("containerd does not read hosts.toml from %s (it searches %s)", certs, strings.Join(r.Dirs, ", "))
	}
	if r.Version != 0 {
		fmt.Fprintf(out, "this node needs:\n%s", r.Fix(certs))
	}
	return err
}

// hostsFor lists the registries a node should reach through the proxy: the
// proxy's registries, the configured source registries, and the target. A
// generic registry with insecure: true keeps that for containerd's fallback
// to it: an http:// server, tried over HTTPS without verification first
// where containerd does that (2.x).
func hostsFor(c *config.Config) []hoststoml.Host {
	index := map[string]int{}
	var hosts []hoststoml.Host
	add := func(h string, insecure bool) {
		if h == "" {
			return
		}
		i, seen := index[h]
		if !seen {
			i, index[h] = len(hosts), len(hosts)
			hosts = append(hosts, hoststoml.Host{Name: h})
		}
		if insecure {
			hosts[i].Server, hosts[i].SkipVerify = "http://"+h, true
		}
	}
	for _, r := range servedRegistries(c) {
		add(r, false)
	}
	for _, r := range c.Source.Registries {
		if r.Type == "generic" && r.Generic.Insecure {
			add(r.Host(), true)
		}
	}
	if t := c.Target; t.Type != "local" {
		add(t.Host(), t.Type == "generic" && t.Generic.Insecure)
	}
	return hosts
}
