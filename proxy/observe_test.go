package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/tracing"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// TestTracingUsesEveryCollectorEndpoint: the tracer built from the xDS
// tracing config exports to every endpoint of the collector's cluster, so
// a dead first endpoint loses nothing; the span counters outlive the
// tracer's replacement.
func TestTracingUsesEveryCollectorEndpoint(t *testing.T) {
	var mu sync.Mutex
	spans := 0
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans += len(ss.Spans)
			}
		}
		mu.Unlock()
	}))
	defer live.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // refuses connections

	p := &Proxy{log: slog.New(slog.DiscardHandler), opts: Options{Workload: "web-1", Namespace: "shop"}}
	eps := []xdsresource.Endpoint{
		{Address: dead, Health: xdsresource.HealthHealthy, Weight: 1},
		{Address: live.Listener.Addr().String(), Health: xdsresource.HealthHealthy, Weight: 1},
	}
	snap := &snapshot.Snapshot{
		Listeners: map[string]*snapshot.Listener{xdsmeta.OutboundListener: {Name: xdsmeta.OutboundListener,
			Tracing: &xdsresource.Tracing{SamplePercent: 100, Protocol: xdsresource.TracingHTTP, Cluster: "weft-otlp", Path: "/v1/traces"}}},
		Clusters: map[string]*snapshot.Cluster{"weft-otlp": {Name: "weft-otlp", Picker: balancer.NewPicker(eps, nil, balancer.Config{})}},
	}
	p.updateTracing(snap)
	if got := p.tracers.conf.endpoints; len(got) != 2 {
		t.Fatalf("tracer built for endpoints %v, want both", got)
	}
	const n = 20
	for round := range 2 {
		tr := p.tracers.cur.Load()
		if tr == nil {
			t.Fatal("no tracer")
		}
		for range n {
			tr.Start(http.Header{}, tracing.KindClient, "GET catalog.shop").End(200)
		}
		if round == 0 {
			// The cluster's endpoints change: a new tracer, the old one
			// exports what it holds.
			snap.Clusters["weft-otlp"].Picker = balancer.NewPicker(eps[1:], nil, balancer.Config{})
			p.updateTracing(snap)
			if p.tracers.cur.Load() == tr {
				t.Fatal("the tracer was not rebuilt for the new endpoints")
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := tr.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if st := p.tracers.counters.Stats(); spans != 2*n || st.Exported != 2*n || st.Failed != 0 || st.Dropped != 0 {
		t.Fatalf("the live collector got %d spans, counters %+v; want %d exported", spans, st, 2*n)
	}
}
