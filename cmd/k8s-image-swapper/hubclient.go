package main

import (
	"cmp"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy/hub"
)

// How a node proxy reaches the hub, from the config and its flag.

// hubTimeout is hub.timeout, or its default.
func hubTimeout(c *config.Config) time.Duration { return cmp.Or(c.Hub.Timeout.D(), hub.DefaultTimeout) }

// hubURL is --hub-url or hub.url; nil without a hub. The chart gives node
// proxies the hub Service's address through the variables Kubernetes sets
// in pods ($(..._SERVICE_HOST)); a pod that started before the Service has
// none, and then runs without the hub (logged), as it would with the hub down.
func hubURL(c *config.Config, flag string, log *slog.Logger) (*url.URL, error) {
	if strings.Contains(flag, "$(") {
		log.Warn("hub address not set in this pod (it started before the hub's Service); pulls go to the sources until it restarts",
			"hub-url", flag)
		return nil, nil
	}
	s := cmp.Or(flag, c.Hub.URL)
	if s == "" {
		return nil, nil
	}
	u, err := hub.ParseURL(s)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	return u, nil
}

// targetIsHub tells whether the config's target is the hub's own store,
// reached through the hub (the chart's in-cluster local store, named after
// the hub.url of the config): it takes no writes from anyone but the hub.
func targetIsHub(c *config.Config) bool {
	u, err := hub.ParseURL(c.Hub.URL)
	return err == nil && strings.EqualFold(c.Target.Host(), u.Host)
}
