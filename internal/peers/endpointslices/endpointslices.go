// Package endpointslices keeps a peers.Set to the ready endpoints of a
// Service, read from its EndpointSlices.
package endpointslices

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/peers"
)

// Watch keeps s to the ready endpoints of a Service's EndpointSlices (port
// named portName) until ctx ends. It needs get, list and watch on
// endpointslices in the namespace: RBAC cannot narrow a list to one
// Service's slices, whose names are generated. It returns once the first
// list is in.
func Watch(ctx context.Context, c kubernetes.Interface, namespace, service, portName string, s *peers.Set, log *slog.Logger) error {
	f := informers.NewSharedInformerFactoryWithOptions(c, 10*time.Minute, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.Set{discoveryv1.LabelServiceName: service}.String()
		}))
	inf := f.Discovery().V1().EndpointSlices()
	lister := inf.Lister().EndpointSlices(namespace)
	refresh := func() {
		found, err := lister.List(labels.Everything())
		if err != nil {
			log.Warn("hub peers: list EndpointSlices", "error", err)
			return
		}
		addrs := ready(found, portName)
		if len(addrs) > 0 {
			s.Update(addrs)
			log.Debug("hub peers", "peers", s.Addrs())
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { refresh() },
		UpdateFunc: func(any, any) { refresh() },
		DeleteFunc: func(any) { refresh() },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("hub peers: EndpointSlices of Service %s/%s (%v) not listed", namespace, service, typ)
		}
	}
	refresh()
	return nil
}

// ready is host:port of every ready endpoint of the slices on the port named portName.
func ready(found []*discoveryv1.EndpointSlice, portName string) []string {
	var out []string
	for _, sl := range found {
		port := int32(0)
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name != nil && *p.Name == portName || portName == "" && len(sl.Ports) == 1) {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				continue
			}
			for _, a := range ep.Addresses {
				out = append(out, net.JoinHostPort(a, strconv.Itoa(int(port))))
			}
		}
	}
	return out
}
