// Package admin is the proxy's admin server: readiness, the current config
// (as compiled), xDS client status and traffic counters, as JSON. Bind it to
// loopback: it exposes configuration.
//
//	GET /ready        200 once the first complete config is applied, else 503
//	GET /healthz      200 while the process runs
//	GET /config_dump  the compiled snapshot: listeners, routes, clusters, endpoints, versions
//	GET /stats/edges  request counts and latency histograms per destination
//	GET /stats/clusters  per upstream cluster: circuit-breaker overflows, retries, budget refusals, ejections, requests in flight
//	GET /xds          xDS connection status, versions, ACK/NACK counts
//	GET /identity     the proxy's SPIFFE ID, certificate serial and expiry, refused peers by reason
//	GET /metrics      Prometheus metrics (text or OpenMetrics): requests, durations, sizes,
//	                  TCP connections and bytes, xDS and certificate health, access-log
//	                  lines and spans lost (by reason), spans exported, Go runtime
//	                  (see docs/observability.md)
//
// /metrics is the one endpoint meant for a scraper elsewhere: bind the
// admin listener where Prometheus can reach it only on a trusted network.
package admin

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/stats"
)

// Options are the admin server's data sources.
type Options struct {
	Ready     func() bool
	Snapshot  func() *snapshot.Snapshot
	Stats     *stats.Stats
	XDS       func() any
	Listeners func() map[string]string
	// Identity describes the proxy's certificate and refused peers.
	Identity func() any
	// Metrics serves GET /metrics; nil: not served.
	Metrics http.Handler
}

// New returns the admin handler. Safe for concurrent use.
func New(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready() {
			io.WriteString(w, "ready\n")
			return
		}
		http.Error(w, "waiting for configuration from the control plane", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /stats/edges", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"bounds_ms": stats.Bounds, "edges": o.Stats.Edges()})
	})
	mux.HandleFunc("GET /stats/clusters", func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]any{}
		if s := o.Snapshot(); s != nil {
			for name, c := range s.Clusters {
				out[name] = c.Picker.Stats()
			}
		}
		writeJSON(w, map[string]any{"clusters": out})
	})
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	mux.HandleFunc("GET /identity", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, o.Identity()) })
	mux.HandleFunc("GET /xds", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, o.XDS()) })
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, dump(o.Snapshot(), o.Listeners()))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type listenerDump struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Bound   string `json:"bound,omitempty"`
	Routes  string `json:"routes"`
}

type clusterDump struct {
	Name      string   `json:"name"`
	HTTP2     bool     `json:"http2"`
	Endpoints []string `json:"endpoints"`
	Degraded  []string `json:"degraded,omitempty"`
}

func dump(s *snapshot.Snapshot, bound map[string]string) any {
	if s == nil {
		return map[string]any{"configured": false}
	}
	out := map[string]any{"configured": true, "versions": s.Versions, "created": s.Created}
	var ls []listenerDump
	for _, l := range s.Listeners {
		routes := l.RDS
		if l.Inline != nil {
			routes = "(inline) " + l.Inline.Name
		}
		ls = append(ls, listenerDump{Name: l.Name, Address: l.Address, Bound: bound[l.Name], Routes: routes})
	}
	out["listeners"] = ls
	routes := map[string]any{}
	for name, t := range s.Routes {
		routes[name] = t.Dump()
	}
	out["routes"] = routes
	var cs []clusterDump
	for _, c := range s.Clusters {
		cd := clusterDump{Name: c.Name, HTTP2: c.HTTP2, Endpoints: []string{}}
		healthy, degraded := c.Picker.Endpoints()
		for _, e := range healthy {
			cd.Endpoints = append(cd.Endpoints, e.Address)
		}
		for _, e := range degraded {
			cd.Degraded = append(cd.Degraded, e.Address)
		}
		cs = append(cs, cd)
	}
	out["clusters"] = cs
	return out
}
