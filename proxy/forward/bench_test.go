package forward

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

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
	for _, path := range []string{"/plain", "/retry"} {
		b.Run(path[1:], func(b *testing.B) {
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
