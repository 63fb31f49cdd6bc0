package proxy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/tracing"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Tracing override (flags): an exporter that does not come from xDS, for a
// workload whose mesh sends no tracing config.
type TracingOverride struct {
	// Endpoint: for "grpc" host:port, for "http" a URL
	// (http://collector:4318/v1/traces). "" : tracing comes from xDS.
	Endpoint string
	// Protocol is "grpc" (default) or "http".
	Protocol string
	// SampleRate is the share of new traces recorded, 0..1.
	SampleRate float64
}

// tracerConfig is what a tracer was built from; a new one is built when it
// changes.
type tracerConfig struct {
	tracing   xdsresource.Tracing
	endpoints []string // the collector cluster's endpoint addresses
}

func (c *tracerConfig) equal(o *tracerConfig) bool {
	if c == nil || o == nil {
		return c == o
	}
	return c.tracing == o.tracing && slices.Equal(c.endpoints, o.endpoints)
}

// tracers holds the current tracer, swapped when the config changes. The
// data path loads it once per request.
type tracers struct {
	cur  atomic.Pointer[tracing.Tracer]
	conf *tracerConfig // last applied; only the xDS handler touches it
	// counters are shared by every tracer the proxy has (a retired one
	// still exporting included), so the metrics never go down.
	counters tracing.Counters
}

// typeShort names an xDS type for metrics: listener, route, cluster,
// endpoint, secret.
func typeShort(typeURL string) string {
	switch typeURL {
	case xdsresource.ListenerType:
		return "listener"
	case xdsresource.RouteType:
		return "route"
	case xdsresource.ClusterType:
		return "cluster"
	case xdsresource.EndpointType:
		return "endpoint"
	case xdsresource.SecretType:
		return "secret"
	}
	return typeURL[strings.LastIndexByte(typeURL, '.')+1:]
}

func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.Contains(host[i:], "]") {
		return host[:i]
	}
	return host
}

// observeSnapshot tells the observers about a new snapshot: the service
// hosts metrics may name (virtual hosts without port, TCP services), and
// the tracing config.
func (p *Proxy) observeSnapshot(res *snapshot.Resources, snap *snapshot.Snapshot) {
	hosts := map[string]string{}
	var services []string
	add := func(svc string) {
		if _, ok := hosts[svc]; !ok {
			services = append(services, svc)
		}
		hosts[svc] = svc
	}
	for _, rc := range res.Routes {
		for _, vh := range rc.VirtualHosts {
			if strings.Contains(vh.Name, "|") {
				continue // an inbound route config, named for its cluster
			}
			svc := stripPort(vh.Name)
			add(svc)
			for _, d := range vh.Domains {
				if d = stripPort(strings.ToLower(d)); d != "" && !strings.Contains(d, "*") {
					if _, ok := hosts[d]; !ok {
						hosts[d] = svc
					}
				}
			}
		}
	}
	for _, l := range res.Listeners {
		for _, fc := range l.FilterChains {
			if fc.TCP == nil {
				continue
			}
			names := []string{fc.TCP.Cluster}
			for _, wc := range fc.TCP.Clusters {
				names = append(names, wc.Name)
			}
			for _, c := range names {
				if name, ns, _, ok := xdsmeta.ParseOutboundCluster(c); ok {
					add(name + "." + ns)
				}
			}
		}
	}
	p.metrics.SetServices(services)
	p.fwd.SetServiceHosts(hosts)
	if p.opts.Tracing.Endpoint == "" {
		p.updateTracing(snap)
	}
}

// updateTracing builds a new tracer when the listeners' tracing config
// (or the address of its collector) changed, and retires the old one: it
// exports what it holds in the background.
func (p *Proxy) updateTracing(snap *snapshot.Snapshot) {
	var want *tracerConfig
	if t := tracingOf(snap); t != nil {
		want = &tracerConfig{tracing: *t}
		if c := snap.Clusters[t.Cluster]; c != nil {
			// Every healthy endpoint (else every degraded one): the
			// exporter spreads batches over them and fails over.
			eps, degraded := c.Picker.Endpoints()
			if len(eps) == 0 {
				eps = degraded
			}
			for _, e := range eps {
				want.endpoints = append(want.endpoints, e.Address)
			}
		}
	}
	old := p.tracers.conf
	if old.equal(want) {
		return
	}
	p.tracers.conf = want
	var next *tracing.Tracer
	if want != nil && len(want.endpoints) == 0 {
		// The cluster (or its endpoints) has not arrived yet.
		p.log.Warn("tracing: the collector's cluster has no endpoint; no spans until it has", "cluster", want.tracing.Cluster)
	}
	if want != nil && len(want.endpoints) > 0 {
		tr, err := p.newTracer(want.tracing.Protocol, exportEndpoints(want), want.tracing.Timeout,
			want.tracing.SamplePercent/100, want.tracing.ServiceName)
		if err != nil {
			p.log.Error("tracing: cannot export", "cluster", want.tracing.Cluster, "error", err)
		} else {
			next = tr
			p.log.Info("tracing: exporting spans", "protocol", want.tracing.Protocol, "cluster", want.tracing.Cluster,
				"endpoints", strings.Join(want.endpoints, ","), "sample_percent", want.tracing.SamplePercent)
		}
	}
	p.swapTracer(next)
}

// tracingOf is the tracing config of the outbound listener, else of the
// first inbound listener (by name) that has one.
func tracingOf(snap *snapshot.Snapshot) *xdsresource.Tracing {
	if l := snap.Listeners[xdsmeta.OutboundListener]; l != nil && l.Tracing != nil {
		return l.Tracing
	}
	var best *snapshot.Listener
	for _, l := range snap.Listeners {
		if l.Tracing != nil && (best == nil || l.Name < best.Name) {
			best = l
		}
	}
	if best == nil {
		return nil
	}
	return best.Tracing
}

// exportEndpoints are the exporters' endpoints: host:port for gRPC, URLs
// for HTTP.
func exportEndpoints(c *tracerConfig) []string {
	out := make([]string, len(c.endpoints))
	for i, e := range c.endpoints {
		out[i] = e
		if c.tracing.Protocol == xdsresource.TracingHTTP {
			out[i] = "http://" + e + c.tracing.Path
		}
	}
	return out
}

// newTracer builds a tracer exporting over protocol to endpoints (grpc:
// host:port, h2c; http: URLs), batches spread over them round robin with
// failover when there are several.
func (p *Proxy) newTracer(protocol string, endpoints []string, timeout time.Duration, rate float64, serviceName string) (*tracing.Tracer, error) {
	targets := make([]tracing.Target, 0, len(endpoints))
	for _, endpoint := range endpoints {
		o := tracing.ExporterOptions{Endpoint: endpoint, Timeout: timeout}
		var (
			exp tracing.Exporter
			err error
		)
		switch protocol {
		case xdsresource.TracingHTTP:
			exp, err = tracing.NewHTTPExporter(o)
		case xdsresource.TracingGRPC, "":
			exp, err = tracing.NewGRPCExporter(o)
		default:
			err = fmt.Errorf("tracing protocol %q: want grpc or http", protocol)
		}
		if err != nil {
			return nil, err
		}
		targets = append(targets, tracing.Target{Address: endpoint, Exporter: exp})
	}
	var exp tracing.Exporter
	if len(targets) == 1 {
		exp = targets[0].Exporter
	} else {
		rr, err := tracing.NewRoundRobin(tracing.RoundRobinOptions{Targets: targets, Logger: p.log.With("component", "tracing")})
		if err != nil {
			return nil, err
		}
		exp = rr
	}
	if serviceName == "" {
		// The app label (else the workload name), as docs/xds.md says.
		serviceName = p.opts.Labels["app"]
		if serviceName == "" {
			serviceName = p.opts.Workload
		}
	}
	res := []tracing.Attr{
		tracing.String("service.name", serviceName),
		tracing.String("service.namespace", p.opts.Namespace),
		tracing.String("weft.workload", p.opts.Workload),
		tracing.String("weft.namespace", p.opts.Namespace),
	}
	if p.self.Version != "" {
		res = append(res, tracing.String("service.version", p.self.Version))
	}
	return tracing.New(tracing.Options{SampleRate: rate, Exporter: exp, Resource: res, Version: Version,
		Counters: &p.tracers.counters, Logger: p.log.With("component", "tracing")}), nil
}

// swapTracer makes next the current tracer (nil: tracing off) and shuts
// the previous one down in the background.
func (p *Proxy) swapTracer(next *tracing.Tracer) {
	if old := p.tracers.cur.Swap(next); old != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_ = old.Shutdown(ctx)
		}()
	}
}

// pollHealth keeps the xDS-connected and certificate-expiry gauges
// current, once a second, until ctx ends.
func (p *Proxy) pollHealth(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		p.metrics.SetXDSConnected(p.client.Status().Connected)
		if _, notAfter, _ := p.source.SVID(); !notAfter.IsZero() {
			p.metrics.SetCertificateExpiry(notAfter)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ParseSampleRate parses a sample rate flag: 0..1, or a percentage
// ending in "%".
func ParseSampleRate(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if pct {
		v /= 100
	}
	if err != nil || !(v >= 0 && v <= 1) {
		return 0, fmt.Errorf("sample rate %q: want a number from 0 to 1, or a percentage", s)
	}
	return v, nil
}
