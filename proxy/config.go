package proxy

import (
	"slices"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/auth"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
)

// OptionsFromConfig reads the proxy block and the source registries of c:
// the registries served are proxy.registries plus every source registry.
// Target, Mirror and Logger are left to the caller.
func OptionsFromConfig(c *config.Config) (Options, error) {
	sources, err := auth.NewSources(c.Source.Registries)
	if err != nil {
		return Options{}, err
	}
	regs := slices.Clone(c.Proxy.Registries)
	for _, r := range c.Source.Registries {
		if h := r.Host(); h != "" && !slices.Contains(regs, h) {
			regs = append(regs, h)
		}
	}
	var push *PushOptions
	if lp := c.Target.Local.Push; c.Target.Type == "local" && lp.Enabled {
		push = &PushOptions{Htpasswd: lp.Htpasswd, TokenFile: lp.TokenFile}
	}
	return Options{
		Push:               push,
		Registries:         regs,
		OnMiss:             c.Proxy.OnMiss,
		WaitTimeout:        c.Proxy.WaitTimeout.D(),
		TagTTL:             c.Proxy.TagTTL.D(),
		UpstreamTimeout:    c.Proxy.UpstreamTimeout.D(),
		Sources:            sources,
		Private:            c.Proxy.Private,
		SharedRepositories: c.Proxy.SharedRepositories,
	}, nil
}
