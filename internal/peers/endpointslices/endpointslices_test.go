package endpointslices

import (
	"fmt"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestReady(t *testing.T) {
	yes, no := true, false
	http, metrics := "http", "metrics"
	p1, p2 := int32(7440), int32(9090)
	slices := []*discoveryv1.EndpointSlice{{
		Ports: []discoveryv1.EndpointPort{{Name: &metrics, Port: &p2}, {Name: &http, Port: &p1}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"10.1.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}},
			{Addresses: []string{"10.1.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes, Terminating: &yes}},
			{Addresses: []string{"fd00::4"}},
		},
	}, {Ports: []discoveryv1.EndpointPort{{Name: &metrics, Port: &p2}}, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.1.0.9"}}}}}
	got := fmt.Sprint(ready(slices, "http"))
	if got != "[10.1.0.1:7440 [fd00::4]:7440]" {
		t.Errorf("ready endpoints %s", got)
	}
}
