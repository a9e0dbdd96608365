package main

import (
	"log/slog"
	"net/http"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/fetch"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/mirror"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/server"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/proxy"
)

// readAPI is what the proxy and the hub both run: the source side first
// (the proxy serves from it, and the engine's copies read through it what
// pulls just fetched), the copy engine, and the read API over both. The
// caller closes sources and, once started, the engine.
type readAPI struct {
	sources *fetch.Sources
	engine  *mirror.Engine
	proxy   *proxy.Proxy
	opts    proxy.Options
}

// newReadAPI builds it into t; copies false serves without copying (a dry
// run, a store only the hub writes).
func newReadAPI(c *config.Config, t target.Target, src sourceAccess, fo fetch.Options, copies bool, log *slog.Logger) (*readAPI, error) {
	sources, err := fetch.New(fo)
	if err != nil {
		return nil, err
	}
	engine, err := newEngine(c, t, src, sources, log)
	if err != nil {
		sources.Close()
		return nil, err
	}
	opts := proxyOptions(c)
	opts.Target, opts.Sources, opts.Mirror, opts.Logger = t, sources, engine, log
	if !copies {
		opts.Mirror = nil
	}
	p, err := proxy.New(opts)
	if err != nil {
		sources.Close()
		return nil, err
	}
	return &readAPI{sources: sources, engine: engine, proxy: p, opts: opts}, nil
}

// servers serve the API (and what more adds to its mux) with health and
// metrics on addr, and those two alone on metricsAddr when set (for
// scraping what listens on loopback only).
func (a *readAPI) servers(name, addr, metricsAddr string, more ...func(*http.ServeMux)) []*server.Server {
	mux := http.NewServeMux()
	mux.Handle("/v2/", a.proxy)
	mux.Handle("/v2", a.proxy)
	for _, f := range more {
		f(mux)
	}
	server.Health(mux, nil)
	servers := []*server.Server{{Name: name, HTTP: &http.Server{Addr: addr, Handler: mux}}}
	if metricsAddr != "" {
		mm := http.NewServeMux()
		server.Health(mm, nil)
		servers = append(servers, &server.Server{Name: name + " metrics", HTTP: &http.Server{Addr: metricsAddr, Handler: mm}})
	}
	return servers
}
