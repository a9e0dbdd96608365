//go:build ignore

// CoreDNS with only the plugins e2e/node.go's Corefile uses (and log, health and
// ready for a look at a failing node), built by hack/tools.sh as CoreDNS documents
// for a custom set of plugins: coremain and the plugins' packages, nothing else.
// The full set links every cloud's DNS SDK and takes minutes more to build cold.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
