// Package telemetry is the wire format between a proxy and the control
// plane's zero-infrastructure view: the body of POST /v1/telemetry (on the
// issuer's mutual-TLS port) and its reply. Plain data with JSON tags,
// standard library only, shared by proxy/telemetry (which sends) and
// controlplane/telemetry (which receives), so the two cannot drift.
package telemetry

import "time"

// Path is where the control plane receives pushes.
const Path = "/v1/telemetry"

// Push is one proxy's report.
type Push struct {
	Workload  string            `json:"workload"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Admin is the proxy's admin listener (host:port), where Prometheus
	// scrapes /metrics.
	Admin string `json:"admin,omitempty"`
	// Boot identifies this run of the proxy: counters restart from zero
	// when it changes.
	Boot string    `json:"boot"`
	Time time.Time `json:"time"`
	// BoundsMS are the latency histogram's upper bounds.
	BoundsMS []float64 `json:"bounds_ms"`
	// Edges are cumulative counters since Boot.
	Edges   []Edge   `json:"edges"`
	Samples []Sample `json:"samples,omitempty"`
}

// Edge is one edge's cumulative counters: requests to a destination
// service (outbound) or from a peer (inbound), per version and mTLS.
type Edge struct {
	Direction string   `json:"direction"`
	Service   string   `json:"service"`
	Version   string   `json:"version,omitempty"`
	MTLS      bool     `json:"mtls"`
	Peer      string   `json:"peer,omitempty"`
	Requests  uint64   `json:"requests"`
	Success   uint64   `json:"success"`
	Buckets   []uint64 `json:"buckets"`
}

// Sample is one recent request, for tap.
type Sample struct {
	Time      time.Time `json:"time"`
	Direction string    `json:"direction"` // outbound or inbound
	Method    string    `json:"method"`
	Authority string    `json:"authority,omitempty"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	LatencyMS float64   `json:"latency_ms"`
	// Source and Destination: workload or SPIFFE ID of the client, and the
	// destination service (name.namespace) and version that served.
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination,omitempty"`
	Version     string `json:"version,omitempty"`
	MTLS        bool   `json:"mtls"`
	// Proxy is the workload (namespace/name) whose proxy reported it; set
	// by the control plane.
	Proxy string `json:"proxy,omitempty"`
}

// Reply is the control plane's answer to a push.
type Reply struct {
	// Tap is true while someone taps traffic this proxy sees; the proxy
	// samples requests only then.
	Tap bool `json:"tap"`
}
