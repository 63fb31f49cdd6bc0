package forward

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	pb "google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/metrics"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/tracing"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

const (
	webID     = "spiffe://weft.local/ns/shop/sa/web"
	catalogID = "spiffe://weft.local/ns/shop/sa/catalog"
)

// svid makes a self-signed certificate for a SPIFFE ID (the tests check
// what the forwarder reports, not chain verification).
func svid(t *testing.T, id string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(id)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// spans is an Exporter that decodes every batch with the official OTLP
// types.
type spans struct {
	mu  sync.Mutex
	all []*tracepb.Span
}

func (s *spans) Export(_ context.Context, b []byte) error {
	var req collectortrace.ExportTraceServiceRequest
	if err := pb.Unmarshal(b, &req); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			s.all = append(s.all, ss.Spans...)
		}
	}
	return nil
}

func (s *spans) byKind(k tracepb.Span_SpanKind) []*tracepb.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*tracepb.Span
	for _, sp := range s.all {
		if sp.Kind == k {
			out = append(out, sp)
		}
	}
	return out
}

// syncBuffer is an access log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		out = append(out, m)
	}
	return out
}

// side is one proxy of a two-proxy hop, with every observer on.
type side struct {
	f      *Forwarder
	m      *metrics.Metrics
	log    *accesslog.Logger
	logBuf *syncBuffer
	tracer *tracing.Tracer
}

func newSide(t *testing.T, self metrics.Peer, snap *snapshot.Snapshot, exp tracing.Exporter, clientTLS func(allowed, alpn []string) *tls.Config) *side {
	t.Helper()
	s := &side{logBuf: &syncBuffer{}}
	var err error
	if s.log, err = accesslog.New(accesslog.Options{Writer: s.logBuf}); err != nil {
		t.Fatal(err)
	}
	s.m = metrics.New(self, metrics.Options{NoRuntime: true})
	s.tracer = tracing.New(tracing.Options{SampleRate: 1, Exporter: exp, BatchTimeout: 20 * time.Millisecond})
	s.f = New(Options{Snapshot: func() *snapshot.Snapshot { return snap }, Metrics: s.m, AccessLog: s.log,
		Tracer: func() *tracing.Tracer { return s.tracer }, Self: self, ClientTLS: clientTLS})
	s.f.Retain(snap)
	t.Cleanup(func() { s.f.Close() })
	return s
}

// flush writes out the access log and the spans.
func (s *side) flush(t *testing.T) {
	t.Helper()
	if err := s.log.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.tracer.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// series returns the label sets of weft_requests_total.
func requestSeries(t *testing.T, m *metrics.Metrics) []map[string]string {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != "weft_requests_total" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			out = append(out, labelMap(mm))
		}
	}
	return out
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func checkLabels(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q (all: %v)", what, k, got[k], v, got)
		}
	}
}

// mesh is web's outbound proxy → mutual TLS → catalog's inbound proxy →
// the app, in process.
type mesh struct {
	out, in *side
	exp     *spans
	srv     *httptest.Server // web's outbound listener
	app     chan http.Header // the headers the app received
}

func newMesh(t *testing.T) *mesh {
	t.Helper()
	m := &mesh{exp: &spans{}, app: make(chan http.Header, 16)}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		m.app <- r.Header.Clone()
		io.WriteString(w, "hello from catalog")
	}))
	t.Cleanup(app.Close)

	// catalog's inbound side: mutual TLS in, the app behind.
	inRes := &snapshot.Resources{
		Listeners: map[string]*xdsresource.Listener{"inbound|15006": {Name: "inbound|15006", FilterChains: []xdsresource.FilterChain{{HTTP: &xdsresource.HTTPConnectionManager{
			Routes: &xdsresource.RouteConfiguration{Name: "inbound|8080", VirtualHosts: []xdsresource.VirtualHost{{Name: "inbound|8080", Domains: []string{"*"},
				Routes: []xdsresource.Route{{Name: "default", Match: prefix("/"), Action: to("inbound|8080")}}}}}}}}}},
		Clusters:  map[string]*xdsresource.Cluster{"inbound|8080": staticCluster("inbound|8080", addrOf(app))},
		Endpoints: map[string]*xdsresource.ClusterLoadAssignment{},
	}
	inSnap, err := snapshot.Compile(inRes, balancer.NewPool())
	if err != nil {
		t.Fatal(err)
	}
	m.in = newSide(t, metrics.Peer{Workload: "catalog-v1-1", Namespace: "shop", Principal: catalogID, Version: "v1"}, inSnap, m.exp, nil)
	m.in.f.SetServiceHosts(map[string]string{"catalog.shop": "catalog.shop"})
	m.in.m.SetServices([]string{"catalog.shop"})
	in := httptest.NewUnstartedServer(m.in.f.Handler("inbound|15006", Inbound, ""))
	in.TLS = &tls.Config{Certificates: []tls.Certificate{svid(t, catalogID)}, ClientAuth: tls.RequireAnyClientCert, NextProtos: []string{"h2"}}
	in.EnableHTTP2 = true
	in.StartTLS()
	t.Cleanup(in.Close)

	// web's outbound side: catalog.shop over mutual TLS (HTTP/2).
	up := staticCluster("outbound|80||catalog.shop", strings.TrimPrefix(in.URL, "https://"))
	up.LoadAssignment.Endpoints[0].Metadata = map[string]string{"workload": "catalog-v1-1", "version": "v1"}
	up.HTTP2 = true
	outRes := &snapshot.Resources{
		Listeners: map[string]*xdsresource.Listener{"outbound": {Name: "outbound", FilterChains: []xdsresource.FilterChain{{HTTP: &xdsresource.HTTPConnectionManager{RouteConfigName: "outbound"}}}}},
		Routes: map[string]*xdsresource.RouteConfiguration{"outbound": {Name: "outbound", VirtualHosts: []xdsresource.VirtualHost{{
			Name: "catalog.shop:80", Domains: []string{"catalog.shop", "catalog.shop:80"},
			Routes: []xdsresource.Route{{Name: "default", Match: prefix("/"), Action: to("outbound|80||catalog.shop")}}}}}},
		Clusters:  map[string]*xdsresource.Cluster{up.Name: up},
		Endpoints: map[string]*xdsresource.ClusterLoadAssignment{},
	}
	outSnap, err := snapshot.Compile(outRes, balancer.NewPool())
	if err != nil {
		t.Fatal(err)
	}
	outSnap.Clusters[up.Name].TLS = &snapshot.UpstreamTLS{AllowedIDs: []string{catalogID}, ALPN: []string{"h2"}, Key: "test"}
	web := svid(t, webID)
	m.out = newSide(t, metrics.Peer{Workload: "web-1", Namespace: "shop", Principal: webID, Version: "v3"}, outSnap, m.exp,
		func(_, alpn []string) *tls.Config {
			return &tls.Config{Certificates: []tls.Certificate{web}, InsecureSkipVerify: true, NextProtos: alpn}
		})
	m.out.m.SetServices([]string{"catalog.shop"})
	m.srv = httptest.NewServer(m.out.f.Handler("outbound", Outbound, ""))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mesh) get(t *testing.T, hdr ...string) http.Header {
	t.Helper()
	req, _ := http.NewRequest("POST", m.srv.URL+"/items?id=7", strings.NewReader("0123456789"))
	req.Host = "catalog.shop"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello from catalog" {
		t.Fatalf("%d %q (%s)", resp.StatusCode, body, resp.Header.Get("x-weft-error"))
	}
	select {
	case h := <-m.app:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("the app got nothing")
	}
	return nil
}

const (
	inTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	inSpan  = "00f067aa0ba902b7"
)

// TestTwoHopsObserved: one request through both proxies over mutual TLS
// is recorded once per direction in metrics and the access log, with the
// peer identities each side verified; its spans link up (the outbound
// client span is the inbound server span's parent, whose id the app
// receives), for W3C and both B3 forms.
func TestTwoHopsObserved(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  []string
		// appSpan returns the parent id the app received, in each format
		// the request came with.
		check func(t *testing.T, h http.Header, server string)
	}{
		{"w3c", []string{"traceparent", "00-" + inTrace + "-" + inSpan + "-01"}, func(t *testing.T, h http.Header, server string) {
			if h.Get("traceparent") != "00-"+inTrace+"-"+server+"-01" || h.Get("b3") != "" {
				t.Errorf("app headers %v", h)
			}
		}},
		{"b3 single", []string{"b3", inTrace + "-" + inSpan + "-1"}, func(t *testing.T, h http.Header, server string) {
			if h.Get("b3") != inTrace+"-"+server+"-1" || h.Get("traceparent") != "00-"+inTrace+"-"+server+"-01" {
				t.Errorf("app headers %v", h)
			}
		}},
		{"b3 multi", []string{"X-B3-TraceId", inTrace, "X-B3-SpanId", inSpan, "X-B3-Sampled", "1"}, func(t *testing.T, h http.Header, server string) {
			if h.Get("X-B3-TraceId") != inTrace || h.Get("X-B3-SpanId") != server || h.Get("X-B3-Sampled") != "1" ||
				h.Get("traceparent") != "00-"+inTrace+"-"+server+"-01" {
				t.Errorf("app headers %v", h)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMesh(t)
			h := m.get(t, append(tc.hdr, "x-request-id", "req-1")...)
			if h.Get(HeaderSourceWorkload) != "" || h.Get(HeaderSourceVersion) != "" {
				t.Errorf("the app sees the proxies' headers: %v", h)
			}
			if h.Get("x-request-id") != "req-1" {
				t.Errorf("x-request-id not kept: %v", h)
			}
			m.out.flush(t)
			m.in.flush(t)

			clients, servers := m.exp.byKind(tracepb.Span_SPAN_KIND_CLIENT), m.exp.byKind(tracepb.Span_SPAN_KIND_SERVER)
			if len(clients) != 1 || len(servers) != 1 {
				t.Fatalf("%d client and %d server spans", len(clients), len(servers))
			}
			c, s := clients[0], servers[0]
			hx := hex.EncodeToString
			if hx(c.TraceId) != inTrace || hx(s.TraceId) != inTrace {
				t.Errorf("trace ids %s %s", hx(c.TraceId), hx(s.TraceId))
			}
			if hx(c.ParentSpanId) != inSpan || hx(s.ParentSpanId) != hx(c.SpanId) {
				t.Errorf("links: client %s (parent %s), server %s (parent %s)", hx(c.SpanId), hx(c.ParentSpanId), hx(s.SpanId), hx(s.ParentSpanId))
			}
			tc.check(t, h, hx(s.SpanId))

			// Metrics, each side once.
			out, in := requestSeries(t, m.out.m), requestSeries(t, m.in.m)
			if len(out) != 1 || len(in) != 1 {
				t.Fatalf("series: outbound %v, inbound %v", out, in)
			}
			checkLabels(t, "outbound", out[0], map[string]string{"reporter": "source", "source_workload": "web-1", "source_principal": webID,
				"source_version": "v3", "destination_workload": "catalog-v1-1", "destination_workload_namespace": "shop", "destination_principal": catalogID,
				"destination_version": "v1", "destination_service": "catalog.shop", "response_code": "200", "response_flags": "-",
				"connection_security_policy": "mutual_tls", "request_protocol": "http"})
			checkLabels(t, "inbound", in[0], map[string]string{"reporter": "destination", "source_workload": "web-1", "source_workload_namespace": "shop",
				"source_principal": webID, "source_version": "v3", "destination_workload": "catalog-v1-1", "destination_principal": catalogID,
				"destination_service": "catalog.shop", "destination_service_name": "catalog", "response_code": "200", "connection_security_policy": "mutual_tls"})

			// Access log, each side once, the same trace and request id.
			ol, il := m.out.logBuf.lines(t), m.in.logBuf.lines(t)
			if len(ol) != 1 || len(il) != 1 {
				t.Fatalf("access log lines: %d outbound, %d inbound", len(ol), len(il))
			}
			for _, l := range []map[string]any{ol[0], il[0]} {
				if l["trace_id"] != inTrace || l["request_id"] != "req-1" || l["status"] != 200.0 || l["bytes_received"] != 10.0 ||
					l["bytes_sent"] != 18.0 || l["path"] != "/items?id=7" || l["method"] != "POST" || l["authority"] != "catalog.shop" {
					t.Errorf("access log line %v", l)
				}
			}
			if ol[0]["source_principal"] != webID || ol[0]["destination_principal"] != catalogID || ol[0]["upstream_cluster"] != "outbound|80||catalog.shop" ||
				ol[0]["protocol"] != "HTTP/1.1" || ol[0]["route_name"] != "default" {
				t.Errorf("outbound line %v", ol[0])
			}
			if il[0]["source_principal"] != webID || il[0]["destination_principal"] != catalogID || il[0]["upstream_cluster"] != "inbound|8080" ||
				il[0]["protocol"] != "HTTP/2" {
				t.Errorf("inbound line %v", il[0])
			}
		})
	}
}

// TestSourceWorkloadOnlyOverMTLS: a plaintext client cannot name itself.
func TestSourceWorkloadOnlyOverMTLS(t *testing.T) {
	m := newMesh(t)
	// Straight to the inbound proxy's handler, without a certificate.
	app := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { app <- r.Header.Clone() }))
	defer up.Close()
	res := &snapshot.Resources{
		Listeners: map[string]*xdsresource.Listener{"in": {Name: "in", FilterChains: []xdsresource.FilterChain{{HTTP: &xdsresource.HTTPConnectionManager{
			Routes: &xdsresource.RouteConfiguration{Name: "in", VirtualHosts: []xdsresource.VirtualHost{{Name: "in", Domains: []string{"*"},
				Routes: []xdsresource.Route{{Name: "default", Match: prefix("/"), Action: to("app")}}}}}}}}}},
		Clusters: map[string]*xdsresource.Cluster{"app": staticCluster("app", addrOf(up))},
	}
	snap, err := snapshot.Compile(res, balancer.NewPool())
	if err != nil {
		t.Fatal(err)
	}
	s := newSide(t, metrics.Peer{Workload: "catalog-v1-1", Namespace: "shop", Principal: catalogID}, snap, m.exp, nil)
	srv := httptest.NewServer(s.f.Handler("in", Inbound, ""))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Header.Set(HeaderSourceWorkload, "admin-console")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := <-app; h.Get(HeaderSourceWorkload) != "" {
		t.Errorf("header passed to the app: %v", h)
	}
	series := requestSeries(t, s.m)
	if len(series) != 1 {
		t.Fatalf("series %v", series)
	}
	checkLabels(t, "plaintext inbound", series[0], map[string]string{"source_workload": "unknown", "source_principal": "unknown",
		"destination_principal": "unknown", "connection_security_policy": "none"})
}

// TestResponseFlags: each failure the forwarder answers itself carries
// its Envoy flag in the metrics and the access log.
func TestResponseFlags(t *testing.T) {
	up := echo()
	defer up.Close()
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	defer slow.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	narrow := staticCluster("narrow", addrOf(slow))
	narrow.CircuitBreakers.MaxRequests = 1
	limit := &xdsresource.LocalRateLimit{Bucket: &xdsresource.TokenBucket{MaxTokens: 1, TokensPerFill: 1, FillInterval: time.Hour}, Enabled: million, Enforced: million}
	r := newRig(t, []xdsresource.Route{
		{Name: "abort", Match: prefix("/abort"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Fault: &xdsresource.Fault{AbortStatus: 418, AbortPerMillion: million}}},
		{Name: "delay", Match: prefix("/delay"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Fault: &xdsresource.Fault{Delay: time.Millisecond, DelayPerMillion: million}}},
		{Name: "limited", Match: prefix("/limited"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{RateLimit: limit}},
		{Name: "empty", Match: prefix("/empty"), Action: to("empty")},
		{Name: "missing", Match: prefix("/missing"), Action: to("nowhere")},
		{Name: "dead", Match: prefix("/dead"), Action: to("dead")},
		{Name: "narrow", Match: prefix("/narrow"), Action: to("narrow")},
	}, []*xdsresource.Cluster{staticCluster("up", addrOf(up)), {Name: "empty", Discovery: xdsresource.DiscoveryEDS}, staticCluster("dead", deadAddr), narrow}, nil)
	logs := &syncBuffer{}
	al, err := accesslog.New(accesslog.Options{Writer: logs, Fields: []string{"path", "status", "response_flags"}})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Peer{Workload: "web-1", Namespace: "ns"}, metrics.Options{NoRuntime: true})
	f := New(Options{Snapshot: func() *snapshot.Snapshot { return r.snap }, Metrics: m, AccessLog: al})
	defer f.Close()
	f.Retain(r.snap)
	srv := httptest.NewServer(f.Handler("outbound", Outbound, ""))
	defer srv.Close()
	do := func(host, path string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	do("svc.ns", "/limited")
	first := make(chan int)
	go func() { first <- do("svc.ns", "/narrow") }()
	<-entered
	want := []struct {
		host, path string
		code       int
		flags      string
	}{
		{"other.ns", "/", 404, "NR"},
		{"svc.ns", "/abort", 418, "FI"},
		{"svc.ns", "/delay", 200, "DI"},
		{"svc.ns", "/limited", 429, "RL"},
		{"svc.ns", "/empty", 503, "UH"},
		{"svc.ns", "/missing", 500, "NC"},
		{"svc.ns", "/dead", 503, "UF"},
		{"svc.ns", "/narrow", 503, "UO"},
	}
	for _, w := range want {
		if code := do(w.host, w.path); code != w.code {
			t.Fatalf("%s%s: %d, want %d", w.host, w.path, code, w.code)
		}
	}
	close(release)
	<-first
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	byCode := map[string]string{}
	for _, s := range requestSeries(t, m) {
		if s["response_flags"] != "-" {
			if old, ok := byCode[s["response_code"]]; ok {
				byCode[s["response_code"]] = old + " " + s["response_flags"]
			} else {
				byCode[s["response_code"]] = s["response_flags"]
			}
		}
	}
	for _, code := range []string{"404", "418", "429", "500"} {
		if byCode[code] == "" {
			t.Errorf("no flag on %s: %v", code, byCode)
		}
	}
	for _, f := range []string{"UH", "UF", "UO"} {
		if !strings.Contains(byCode["503"], f) {
			t.Errorf("503 series lack %s: %q", f, byCode["503"])
		}
	}
	lines := logs.lines(t)
	got := map[string]string{}
	for _, l := range lines {
		got[l["path"].(string)] += l["response_flags"].(string)
	}
	for _, w := range want {
		if !strings.Contains(got[w.path], w.flags) {
			t.Errorf("access log %s: flags %q, want %s", w.path, got[w.path], w.flags)
		}
	}
}
