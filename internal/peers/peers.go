// Package peers is the set of live hub replicas and who among them owns a
// repository: rendezvous (highest random weight) hashing, so that a replica
// joining or leaving moves only the repositories it gains or loses.
package peers

import (
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/dgryski/go-rendezvous"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

// Set is the replicas (host:port each), one of them this process.
type Set struct {
	self string

	mu    sync.RWMutex
	addrs []string
	rdv   *rendezvous.Rendezvous
}

// New is a set of addrs, self among them (added when missing).
func New(self string, addrs []string) *Set {
	s := &Set{self: self}
	s.Update(addrs)
	return s
}

// Update replaces the replicas; this process stays one of them, so that it
// serves what no one else can while the list catches up.
func (s *Set) Update(addrs []string) {
	list := slices.Clone(addrs)
	if s.self != "" && !slices.Contains(list, s.self) {
		list = append(list, s.self)
	}
	slices.Sort(list)
	list = slices.Compact(list)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = list
	s.rdv = rendezvous.New(list, xxhash.Sum64String)
	metrics.HubPeers.Set(float64(len(list)))
}

// Owner is the replica that owns key, and whether that is this process.
func (s *Set) Owner(key string) (addr string, self bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	addr = s.rdv.Lookup(key)
	return addr, addr == "" || addr == s.self
}

// Addrs is the replicas now, sorted.
func (s *Set) Addrs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.addrs)
}

// Self is this process's address.
func (s *Set) Self() string { return s.self }
