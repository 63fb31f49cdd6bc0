package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// proxyOTLPReceiver is a real OTLP/gRPC receiver: grpc-go serving the official
// TraceService definition.
type proxyOTLPReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string
	mu   sync.Mutex
	// spans by trace id (hex), with the workload of the resource that
	// sent each.
	spans map[string][]proxyReceivedSpan
}

type proxyReceivedSpan struct {
	workload string
	span     *tracepb.Span
}

func startProxyOTLPReceiver(t *testing.T) *proxyOTLPReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &proxyOTLPReceiver{addr: ln.Addr().String(), spans: map[string][]proxyReceivedSpan{}}
	g := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(g, r)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return r
}

func (r *proxyOTLPReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		workload := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "weft.workload" {
				workload = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				id := hex.EncodeToString(sp.TraceId)
				r.spans[id] = append(r.spans[id], proxyReceivedSpan{workload, sp})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *proxyOTLPReceiver) trace(id string) []proxyReceivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]proxyReceivedSpan(nil), r.spans[id]...)
}

// TestTracingAcrossTwoProxies: a request with a W3C or B3 context through
// web's sidecar and catalog's sidecar (mutual TLS between them) makes one
// trace with a client span from web's sidecar, child of the incoming
// context, and a server span from catalog's, child of the client span;
// the app gets the server span as its parent, in the formats the request
// came with. Each sidecar also counts the request in /metrics, and
// catalog's access log has it with its trace id.
//
// The sidecars get their exporter from --tracing-endpoint: the control
// plane's side of tracing config (mesh config → HCM tracing) is tested by
// e2e/observability tests of its own.
func TestTracingAcrossTwoProxies(t *testing.T) {
	recv := startProxyOTLPReceiver(t)
	cp := newControlPlane(t)

	headers := make(chan http.Header, 16)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case headers <- r.Header.Clone():
		default:
		}
		io.WriteString(w, "catalog")
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	appPort := portOf(t, ln.Addr().String())

	tracingFlags := []string{"--tracing-endpoint", recv.addr, "--tracing-protocol", "grpc", "--tracing-sample-rate", "1"}
	accessLog := filepath.Join(t.TempDir(), "catalog.access.log")
	cp.apply(t, serviceYAML("catalog", "app: catalog", appPort))
	catalog := startSidecar(t, cp, sidecarOpts{workload: "catalog-1", namespace: "shop", identity: "catalog", labels: []string{"app=catalog", "version=v1"},
		appPort: appPort, extra: append(tracingFlags, "--access-log", accessLog)})
	web := startSidecar(t, cp, sidecarOpts{workload: "web-1", namespace: "shop", identity: "web", labels: []string{"app=web"},
		upstreams: []string{"catalog.shop"}, extra: tracingFlags})
	base := "http://" + web.upstreams["catalog.shop"]
	eventually(t, 10*time.Second, func() error {
		code, _, body, err := get(http.DefaultClient, base+"/warmup", "")
		if err != nil || code != 200 {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	for len(headers) > 0 {
		<-headers
	}

	for i, tc := range []struct {
		name string
		hdr  func(trace, span string) map[string]string
		// appParent returns the parent span id the app received, in each
		// format the request arrived with (they must agree).
		appParents func(h http.Header) []string
	}{
		{"w3c", func(tr, sp string) map[string]string {
			return map[string]string{"traceparent": "00-" + tr + "-" + sp + "-01"}
		},
			func(h http.Header) []string { return []string{traceField(h.Get("traceparent"), 2)} }},
		{"b3 single", func(tr, sp string) map[string]string { return map[string]string{"b3": tr + "-" + sp + "-1"} },
			func(h http.Header) []string {
				return []string{traceField(h.Get("traceparent"), 2), traceField(h.Get("b3"), 1)}
			}},
		{"b3 multi", func(tr, sp string) map[string]string {
			return map[string]string{"X-B3-TraceId": tr, "X-B3-SpanId": sp, "X-B3-Sampled": "1"}
		}, func(h http.Header) []string {
			return []string{traceField(h.Get("traceparent"), 2), h.Get("X-B3-SpanId")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trace := fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e47%02x", i)
			parent := "00f067aa0ba902b7"
			req, _ := http.NewRequest("GET", base+"/items", nil)
			for k, v := range tc.hdr(trace, parent) {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			h := <-headers
			var client, server *tracepb.Span
			// Spans are batched for up to 5 s.
			eventually(t, 15*time.Second, func() error {
				client, server = nil, nil
				for _, s := range recv.trace(trace) {
					switch {
					case s.workload == "web-1" && s.span.Kind == tracepb.Span_SPAN_KIND_CLIENT:
						client = s.span
					case s.workload == "catalog-1" && s.span.Kind == tracepb.Span_SPAN_KIND_SERVER:
						server = s.span
					}
				}
				if client == nil || server == nil {
					return fmt.Errorf("trace %s: spans %v", trace, recv.trace(trace))
				}
				return nil
			})
			hx := hex.EncodeToString
			if hx(client.ParentSpanId) != parent {
				t.Errorf("client span's parent %s, want the incoming %s", hx(client.ParentSpanId), parent)
			}
			if hx(server.ParentSpanId) != hx(client.SpanId) {
				t.Errorf("server span's parent %s, want the client span %s", hx(server.ParentSpanId), hx(client.SpanId))
			}
			for _, p := range tc.appParents(h) {
				if p != hx(server.SpanId) {
					t.Errorf("the app's parent %q, want the server span %s (headers %v)", p, hx(server.SpanId), h)
				}
			}
			if !strings.Contains(h.Get("traceparent"), trace) {
				t.Errorf("the app's traceparent %q is not in trace %s", h.Get("traceparent"), trace)
			}
		})
	}

	// Both sidecars count the requests, each from its side.
	metricsOf := func(admin string) string {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	src := metricsOf(web.admin)
	for _, want := range []string{`reporter="source"`, `destination_service="catalog.shop"`, `destination_principal="spiffe://weft.local/ns/shop/sa/catalog"`,
		`source_workload="web-1"`, `destination_workload="catalog-1"`, `destination_version="v1"`, `connection_security_policy="mutual_tls"`, "weft_proxy_xds_connected 1",
		`weft_proxy_access_log_dropped_total{reason="queue_full"} 0`, `weft_proxy_spans_dropped_total{reason="queue_full"} 0`,
		`weft_proxy_spans_dropped_total{reason="export_failed"} 0`, "weft_proxy_spans_exported_total"} {
		if !strings.Contains(src, want) {
			t.Errorf("web's /metrics lacks %s", want)
		}
	}
	dst := metricsOf(catalog.admin)
	for _, want := range []string{`reporter="destination"`, `source_workload="web-1"`, `source_principal="spiffe://weft.local/ns/shop/sa/web"`,
		`destination_service="catalog.shop"`, "weft_proxy_certificate_expiry_timestamp_seconds"} {
		if !strings.Contains(dst, want) {
			t.Errorf("catalog's /metrics lacks %s", want)
		}
	}

	// catalog's access log has each request with its trace id (flushed
	// within a second).
	eventually(t, 5*time.Second, func() error {
		b, err := os.ReadFile(accessLog)
		if err != nil {
			return err
		}
		seen := 0
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e map[string]any
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				return fmt.Errorf("%v: %s", err, line)
			}
			if id, _ := e["trace_id"].(string); strings.HasPrefix(id, "4bf92f3577b34da6a3ce929d0e0e47") && e["source_principal"] == "spiffe://weft.local/ns/shop/sa/web" {
				seen++
			}
		}
		if seen != 3 {
			return fmt.Errorf("%d traced lines in %s", seen, b)
		}
		return nil
	})
}

// traceField returns the i-th dash-separated field of a trace header.
func traceField(v string, i int) string {
	parts := strings.Split(v, "-")
	if i < len(parts) {
		return parts[i]
	}
	return ""
}
