package forward

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/metrics"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/tracing"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// BenchmarkForward measures the plain path (one route, one endpoint, no
// retries) and the same with the mesh's default retry policy, in process.
func BenchmarkForward(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	mesh := &xdsresource.RetryPolicy{RetryOn: []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"},
		NumRetries: 2, RetriableStatusCodes: []uint32{503}, PreviousHosts: true, RetriableMethods: []string{"GET", "HEAD"}}
	r := newRig(b, []xdsresource.Route{
		{Name: "retry", Match: prefix("/retry"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Retry: mesh}},
		{Name: "plain", Match: prefix("/"), Action: to("up")},
	}, []*xdsresource.Cluster{staticCluster("up", addrOf(up))}, nil)
	h := r.f.Handler("outbound", Outbound, "")
	bench(b, h, "", "/plain", "/retry")

	// The same with every observer on: metrics, access log (to
	// io.Discard), a tracer that samples nothing (headers still
	// propagate), tap off.
	al, err := accesslog.New(accesslog.Options{Writer: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer al.Close()
	tr := tracing.New(tracing.Options{SampleRate: 0})
	m := metrics.New(metrics.Peer{Workload: "web-1", Namespace: "ns", Principal: "spiffe://weft.local/ns/ns/sa/web"}, metrics.Options{NoRuntime: true})
	f := New(Options{Snapshot: func() *snapshot.Snapshot { return r.snap }, Metrics: m, AccessLog: al,
		Tracer: func() *tracing.Tracer { return tr }, Self: metrics.Peer{Workload: "web-1"}})
	defer f.Close()
	bench(b, f.Handler("outbound", Outbound, ""), "observed-", "/plain")
	f = New(Options{Snapshot: func() *snapshot.Snapshot { return r.snap }, Metrics: m, Self: metrics.Peer{Workload: "web-1"}})
	defer f.Close()
	bench(b, f.Handler("outbound", Outbound, ""), "metrics-", "/plain")
}

func bench(b *testing.B, h http.Handler, prefix string, paths ...string) {
	for _, path := range paths {
		b.Run(prefix+path[1:], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "http://svc.ns"+path, nil)
				req.Header.Set("x-request-id", "fixed")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
