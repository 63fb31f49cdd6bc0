// Package snapshot is the proxy's runtime configuration: the decoded xDS
// resources compiled into one immutable Snapshot (route tables, clusters
// with their endpoint pickers, listeners) that the data path reads through
// an atomic pointer. A new Snapshot is compiled on every accepted xDS
// update and swapped in whole; a published Snapshot is never mutated.
package snapshot

import (
	"sort"
	"time"

	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Resources is the proxy's current set of decoded resources, by name.
type Resources struct {
	Listeners map[string]*xdsresource.Listener
	Routes    map[string]*xdsresource.RouteConfiguration
	Clusters  map[string]*xdsresource.Cluster
	Endpoints map[string]*xdsresource.ClusterLoadAssignment
	// Versions of each type URL, as last accepted.
	Versions map[string]string
}

// Snapshot is a compiled configuration. Immutable; safe for concurrent use.
type Snapshot struct {
	Listeners map[string]*Listener
	Routes    map[string]*route.Table
	Clusters  map[string]*Cluster
	Versions  map[string]string
	Created   time.Time
}

// Listener is a compiled listener.
type Listener struct {
	Name    string
	Address string
	// Inline is the listener's own route table; nil when it uses RDS.
	Inline *route.Table
	// RDS names the RouteConfiguration it uses.
	RDS string
	// TCPCluster is set for a TCP proxy listener.
	TCPCluster string
}

// Cluster is a compiled cluster.
type Cluster struct {
	Name           string
	HTTP2          bool
	ConnectTimeout time.Duration
	Picker         *balancer.Picker
}

// RouteTable returns the listener's route table, or nil when its RDS
// config has not arrived.
func (s *Snapshot) RouteTable(l *Listener) *route.Table {
	if l.Inline != nil {
		return l.Inline
	}
	return s.Routes[l.RDS]
}

// Compile builds a snapshot of the resources; cluster state comes from the
// pool (and the pool forgets clusters that are gone).
func Compile(res *Resources, pool *balancer.Pool) *Snapshot {
	s := &Snapshot{
		Listeners: make(map[string]*Listener, len(res.Listeners)),
		Routes:    make(map[string]*route.Table, len(res.Routes)),
		Clusters:  make(map[string]*Cluster, len(res.Clusters)),
		Versions:  map[string]string{},
		Created:   time.Now(),
	}
	for k, v := range res.Versions {
		s.Versions[k] = v
	}
	for name, rc := range res.Routes {
		s.Routes[name] = route.Compile(rc)
	}
	for name, l := range res.Listeners {
		cl := &Listener{Name: name, Address: l.Address}
		switch {
		case l.HTTP != nil && l.HTTP.Routes != nil:
			cl.Inline = route.Compile(l.HTTP.Routes)
		case l.HTTP != nil:
			cl.RDS = l.HTTP.RouteConfigName
		case l.TCP != nil:
			cl.TCPCluster = l.TCP.Cluster
		}
		s.Listeners[name] = cl
	}
	keep := make(map[string]bool, len(res.Clusters))
	for name, c := range res.Clusters {
		keep[name] = true
		var eps []xdsresource.Endpoint
		switch c.Discovery {
		case xdsresource.DiscoveryStatic:
			if c.LoadAssignment != nil {
				eps = c.LoadAssignment.Endpoints
			}
		case xdsresource.DiscoveryEDS:
			svc := c.EDSServiceName
			if svc == "" {
				svc = name
			}
			if cla := res.Endpoints[svc]; cla != nil {
				eps = cla.Endpoints
			}
		}
		s.Clusters[name] = &Cluster{
			Name:           name,
			HTTP2:          c.HTTP2,
			ConnectTimeout: c.ConnectTimeout,
			Picker:         balancer.NewPicker(eps, pool.Get(name)),
		}
	}
	pool.Retain(keep)
	return s
}

// EDSNames returns the EDS resource names the clusters need, sorted.
func EDSNames(clusters map[string]*xdsresource.Cluster) []string {
	var out []string
	for name, c := range clusters {
		if c.Discovery != xdsresource.DiscoveryEDS {
			continue
		}
		if c.EDSServiceName != "" {
			name = c.EDSServiceName
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// RDSNames returns the RouteConfiguration names the listeners need, sorted.
func RDSNames(listeners map[string]*xdsresource.Listener) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range listeners {
		if l.HTTP != nil && l.HTTP.RouteConfigName != "" && !seen[l.HTTP.RouteConfigName] {
			seen[l.HTTP.RouteConfigName] = true
			out = append(out, l.HTTP.RouteConfigName)
		}
	}
	sort.Strings(out)
	return out
}
