package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

const (
	tid  = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid  = "00f067aa0ba902b7"
	tid8 = "a3ce929d0e0e4736"
)

func TestExtract(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      map[string]string
		valid  bool
		trace  string
		span   string
		dec    Decision
		format Format
		tstate string
	}{
		{name: "w3c sampled", h: map[string]string{"traceparent": "00-" + tid + "-" + sid + "-01", "tracestate": "congo=t61rcWkgMzE"},
			valid: true, trace: tid, span: sid, dec: Sampled, format: FormatW3C, tstate: "congo=t61rcWkgMzE"},
		{name: "w3c not sampled", h: map[string]string{"traceparent": "00-" + tid + "-" + sid + "-00"},
			valid: true, trace: tid, span: sid, dec: NotSampled, format: FormatW3C},
		{name: "w3c future version with extra field", h: map[string]string{"traceparent": "01-" + tid + "-" + sid + "-01-what"},
			valid: true, trace: tid, span: sid, dec: Sampled, format: FormatW3C},
		{name: "w3c uppercase refused", h: map[string]string{"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + sid + "-01"}},
		{name: "w3c zero trace refused", h: map[string]string{"traceparent": "00-00000000000000000000000000000000-" + sid + "-01"}},
		{name: "w3c version ff refused", h: map[string]string{"traceparent": "ff-" + tid + "-" + sid + "-01"}},
		{name: "w3c 00 with extra refused", h: map[string]string{"traceparent": "00-" + tid + "-" + sid + "-01-x"}},
		{name: "bad w3c falls back to b3", h: map[string]string{"traceparent": "garbage", "b3": tid + "-" + sid + "-1"},
			valid: true, trace: tid, span: sid, dec: Sampled, format: FormatB3Single},
		{name: "b3 single with parent", h: map[string]string{"b3": tid + "-" + sid + "-0-05e3ac9a4f6e3b90"},
			valid: true, trace: tid, span: sid, dec: NotSampled, format: FormatB3Single},
		{name: "b3 single debug", h: map[string]string{"b3": tid + "-" + sid + "-d"},
			valid: true, trace: tid, span: sid, dec: Sampled, format: FormatB3Single},
		{name: "b3 single no decision, 64-bit trace", h: map[string]string{"b3": tid8 + "-" + sid},
			valid: true, trace: "0000000000000000" + tid8, span: sid, dec: Defer, format: FormatB3Single},
		{name: "b3 deny only", h: map[string]string{"b3": "0"}, dec: NotSampled, format: FormatB3Single},
		{name: "b3 multi", h: map[string]string{"X-B3-TraceId": tid, "X-B3-SpanId": sid, "X-B3-Sampled": "1", "X-B3-ParentSpanId": "05e3ac9a4f6e3b90"},
			valid: true, trace: tid, span: sid, dec: Sampled, format: FormatB3Multi},
		{name: "b3 multi flags debug", h: map[string]string{"X-B3-TraceId": tid, "X-B3-SpanId": sid, "X-B3-Flags": "1"},
			valid: true, trace: tid, span: sid, dec: Sampled, format: FormatB3Multi},
		{name: "b3 multi sampled only", h: map[string]string{"X-B3-Sampled": "0"}, dec: NotSampled, format: FormatB3Multi},
		{name: "b3 multi bad span", h: map[string]string{"X-B3-TraceId": tid, "X-B3-SpanId": "xyz"}},
		{name: "nothing", h: map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.h {
				h.Set(k, v)
			}
			sc := Extract(h)
			if sc.IsValid() != tc.valid || sc.Decision != tc.dec || sc.Format != tc.format || sc.TraceState != tc.tstate {
				t.Fatalf("got %+v", sc)
			}
			if tc.valid && (sc.TraceID.String() != tc.trace || sc.SpanID.String() != tc.span) {
				t.Fatalf("ids %s %s", sc.TraceID, sc.SpanID)
			}
		})
	}
}

func TestStartKeepsParent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    map[string]string
		check func(t *testing.T, h http.Header, sp *Span)
	}{
		{"w3c", map[string]string{"traceparent": "00-" + tid + "-" + sid + "-01", "tracestate": "a=b"}, func(t *testing.T, h http.Header, sp *Span) {
			want := "00-" + tid + "-" + sp.Context().SpanID.String() + "-01"
			if h.Get("traceparent") != want || h.Get("tracestate") != "a=b" || h.Get("b3") != "" {
				t.Errorf("headers %v", h)
			}
		}},
		{"b3 single", map[string]string{"b3": tid + "-" + sid + "-1"}, func(t *testing.T, h http.Header, sp *Span) {
			if h.Get("b3") != tid+"-"+sp.Context().SpanID.String()+"-1" || h.Get("traceparent") == "" {
				t.Errorf("headers %v", h)
			}
		}},
		{"b3 multi", map[string]string{"X-B3-TraceId": tid, "X-B3-SpanId": sid, "X-B3-Sampled": "1", "X-B3-ParentSpanId": "1111111111111111"}, func(t *testing.T, h http.Header, sp *Span) {
			if h.Get("X-B3-TraceId") != tid || h.Get("X-B3-SpanId") != sp.Context().SpanID.String() ||
				h.Get("X-B3-Sampled") != "1" || h.Get("X-B3-ParentSpanId") != "" {
				t.Errorf("headers %v", h)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(Options{SampleRate: 0})
			h := http.Header{}
			for k, v := range tc.in {
				h.Set(k, v)
			}
			sp := tr.Start(h, KindClient, "GET x")
			if sp.Context().TraceID.String() != tid || sp.parent.String() != sid || sp.Context().SpanID.String() == sid {
				t.Fatalf("span %+v parent %s", sp.Context(), sp.parent)
			}
			if sp.Context().Decision != Sampled {
				t.Fatal("incoming sampled flag not respected (rate is 0)")
			}
			tc.check(t, h, sp)
		})
	}
}

func TestSampling(t *testing.T) {
	never := New(Options{SampleRate: 0})
	always := New(Options{SampleRate: 1})
	half := New(Options{SampleRate: 0.5})
	n := 0
	for range 4000 {
		if never.Start(http.Header{}, KindServer, "x").Context().Decision == Sampled {
			t.Fatal("rate 0 sampled a new trace")
		}
		if always.Start(http.Header{}, KindServer, "x").Context().Decision != Sampled {
			t.Fatal("rate 1 did not sample")
		}
		if half.Start(http.Header{}, KindServer, "x").Context().Decision == Sampled {
			n++
		}
	}
	if n < 1700 || n > 2300 {
		t.Errorf("rate 0.5 sampled %d of 4000", n)
	}
	// Incoming not-sampled wins over rate 1, and is propagated.
	h := http.Header{}
	h.Set("traceparent", "00-"+tid+"-"+sid+"-00")
	if sp := always.Start(h, KindServer, "x"); sp.Context().Decision != NotSampled || sp.Recording() || h.Get("traceparent")[53:] != "00" {
		t.Error("incoming not-sampled was overridden")
	}
	// The decision for a new trace is a function of the trace id: a
	// second proxy agrees with the first.
	other := New(Options{SampleRate: 0.5})
	for range 200 {
		id := newTraceID()
		if half.sample(id) != other.sample(id) {
			t.Fatal("two tracers disagree on a trace id")
		}
	}
}

// collector is a real OTLP gRPC receiver (grpc-go and the official
// service definition).
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*collectortrace.ExportTraceServiceRequest
	got  chan struct{}
}

func (c *collector) Export(_ context.Context, r *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, r := range c.reqs {
		for _, rs := range r.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				out = append(out, ss.Spans...)
			}
		}
	}
	return out
}

// twoHops runs an outbound (client) span and then, on the "server's"
// proxy, an inbound span from the headers the first one forwarded.
func twoHops(t *testing.T, exp Exporter) (client, server *Span) {
	t.Helper()
	res := []Attr{String("service.name", "web.shop"), String("weft.workload", "web-1")}
	a := New(Options{SampleRate: 1, Exporter: exp, Resource: res, BatchSize: 10, BatchTimeout: 50 * time.Millisecond})
	b := New(Options{SampleRate: 0, Exporter: exp, Resource: res, BatchSize: 10, BatchTimeout: 50 * time.Millisecond})
	r := httptest.NewRequest("GET", "http://catalog.shop/items?x=1", nil)
	r.Header.Set("traceparent", "00-"+tid+"-"+sid+"-01")
	client = a.Start(r.Header, KindClient, "GET catalog.shop", RequestAttributes(r)...)
	client.SetAttributes(String(AttrUpstreamCluster, "outbound|80||catalog.shop"), String(AttrPeerPrincipal, "spiffe://weft.local/ns/shop/sa/catalog"))
	server = b.Start(r.Header, KindServer, "GET catalog.shop", RequestAttributes(r)...)
	server.End(503)
	client.End(200, Bool("weft.mtls", true), Float("weft.x", 1.5))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.Exported != 1 || s.Failed != 0 {
		t.Fatalf("client tracer stats %+v", s)
	}
	return client, server
}

func checkSpans(t *testing.T, spans []*tracepb.Span, client, server *Span) {
	t.Helper()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	by := map[tracepb.Span_SpanKind]*tracepb.Span{}
	for _, s := range spans {
		by[s.Kind] = s
	}
	c, s := by[tracepb.Span_SPAN_KIND_CLIENT], by[tracepb.Span_SPAN_KIND_SERVER]
	if c == nil || s == nil {
		t.Fatalf("kinds: %v", spans)
	}
	cid, sidb := client.Context().SpanID, server.Context().SpanID
	if string(c.TraceId) != string(mustHex(tid)) || string(s.TraceId) != string(c.TraceId) {
		t.Error("trace ids differ")
	}
	if string(c.SpanId) != string(cid[:]) || string(c.ParentSpanId) != string(mustHex(sid)) {
		t.Errorf("client span %x parent %x", c.SpanId, c.ParentSpanId)
	}
	if string(s.SpanId) != string(sidb[:]) || string(s.ParentSpanId) != string(cid[:]) {
		t.Errorf("server span's parent %x, want the client span %x", s.ParentSpanId, cid)
	}
	if c.Name != "GET catalog.shop" || c.EndTimeUnixNano < c.StartTimeUnixNano || c.StartTimeUnixNano == 0 {
		t.Errorf("client span %v", c)
	}
	if c.Flags&0x300 != 0x300 || c.Flags&1 != 1 {
		t.Errorf("flags %x", c.Flags)
	}
	attrs := map[string]any{}
	for _, kv := range c.Attributes {
		switch v := kv.Value.Value.(type) {
		case interface{ GetStringValue() string }:
			attrs[kv.Key] = v.GetStringValue()
		default:
			attrs[kv.Key] = kv.Value
		}
	}
	for k, want := range map[string]string{AttrMethod: "GET", AttrPath: "/items", AttrServerAddress: "catalog.shop",
		AttrUpstreamCluster: "outbound|80||catalog.shop", AttrPeerPrincipal: "spiffe://weft.local/ns/shop/sa/catalog"} {
		found := false
		for _, kv := range c.Attributes {
			if kv.Key == k && kv.Value.GetStringValue() == want {
				found = true
			}
		}
		if !found {
			t.Errorf("client span lacks %s=%s: %v", k, want, c.Attributes)
		}
	}
	var code, mtls, x bool
	for _, kv := range c.Attributes {
		code = code || (kv.Key == AttrStatusCode && kv.Value.GetIntValue() == 200)
		mtls = mtls || (kv.Key == "weft.mtls" && kv.Value.GetBoolValue())
		x = x || (kv.Key == "weft.x" && kv.Value.GetDoubleValue() == 1.5)
	}
	if !code || !mtls || !x {
		t.Errorf("typed attributes missing: %v", c.Attributes)
	}
	if s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || c.Status.GetCode() != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("status: server %v client %v", s.Status, c.Status)
	}
}

func mustHex(s string) []byte {
	var out []byte
	for i := 0; i < len(s); i += 2 {
		hi, _ := nibble(s[i])
		lo, _ := nibble(s[i+1])
		out = append(out, hi<<4|lo)
	}
	return out
}

func TestExportGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{got: make(chan struct{}, 1)}
	g := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(g, col)
	go g.Serve(lis)
	defer g.Stop()

	exp, err := NewGRPCExporter(ExporterOptions{Endpoint: lis.Addr().String(), Headers: map[string]string{"x-api-key": "k"}})
	if err != nil {
		t.Fatal(err)
	}
	client, server := twoHops(t, exp)
	checkSpans(t, col.spans(), client, server)
	col.mu.Lock()
	rs := col.reqs[0].ResourceSpans[0]
	col.mu.Unlock()
	if rs.Resource.Attributes[0].Key != "service.name" || rs.ScopeSpans[0].Scope.Name != "weft-proxy" {
		t.Errorf("resource/scope: %v", rs)
	}
}

// unimplemented answers every call with gRPC status UNIMPLEMENTED.
type unimplemented struct {
	collectortrace.UnimplementedTraceServiceServer
}

func TestExportGRPCError(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	g := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(g, unimplemented{})
	go g.Serve(lis)
	defer g.Stop()
	exp, _ := NewGRPCExporter(ExporterOptions{Endpoint: lis.Addr().String()})
	err := exp.Export(context.Background(), nil)
	ee, ok := err.(*ExportError)
	if !ok || ee.GRPCCode != 12 {
		t.Fatalf("err = %v", err)
	}
}

func TestExportHTTP(t *testing.T) {
	var mu sync.Mutex
	var reqs []*collectortrace.ExportTraceServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Method != "POST" {
			http.Error(w, "bad request", 400)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		reqs = append(reqs, &req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	exp, err := NewHTTPExporter(ExporterOptions{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	client, server := twoHops(t, exp)
	mu.Lock()
	defer mu.Unlock()
	var spans []*tracepb.Span
	for _, r := range reqs {
		for _, rs := range r.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
	}
	checkSpans(t, spans, client, server)
}

// stuck blocks every export until released.
type stuck struct{ release chan struct{} }

func (s stuck) Export(ctx context.Context, _ []byte) error {
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return nil
}

func TestQueueFullDrops(t *testing.T) {
	exp := stuck{release: make(chan struct{})}
	tr := New(Options{SampleRate: 1, Exporter: exp, QueueSize: 4, BatchSize: 1})
	start := time.Now()
	for range 1000 {
		tr.Start(http.Header{}, KindServer, "x").End(200)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("End blocked on a stuck exporter")
	}
	if tr.Stats().Dropped == 0 {
		t.Fatal("nothing dropped")
	}
	close(exp.release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s := tr.Stats()
	if s.Exported+s.Dropped != 1000 {
		t.Errorf("stats %+v do not add up to 1000", s)
	}
}

func BenchmarkStartEndUnsampled(b *testing.B) {
	tr := New(Options{SampleRate: 0})
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		h.Set("traceparent", "00-"+tid+"-"+sid+"-00")
		tr.Start(h, KindClient, "GET x").End(200)
	}
}

// TestB3KeptBesideW3C: a request that carries traceparent and B3 (an app
// forwarding every header it got from its sidecar) leaves with both, in
// sync: the next hop's parent is this span whichever it reads.
func TestB3KeptBesideW3C(t *testing.T) {
	tr := New(Options{SampleRate: 1})
	h := http.Header{}
	h.Set("traceparent", "00-"+tid+"-"+sid+"-01")
	h.Set("b3", tid+"-"+sid+"-1")
	h.Set("X-B3-TraceId", tid)
	h.Set("X-B3-SpanId", sid)
	h.Set("X-B3-Sampled", "1")
	sp := tr.Start(h, KindClient, "GET")
	span := sp.Context().SpanID.String()
	if h.Get("traceparent") != "00-"+tid+"-"+span+"-01" || h.Get("b3") != tid+"-"+span+"-1" ||
		h.Get("X-B3-SpanId") != span || h.Get("X-B3-TraceId") != tid {
		t.Fatalf("headers out of sync: %v", h)
	}
	// And a W3C-only request gets no B3.
	h = http.Header{}
	h.Set("traceparent", "00-"+tid+"-"+sid+"-01")
	tr.Start(h, KindClient, "GET")
	if h.Get("b3") != "" || h.Get("X-B3-TraceId") != "" {
		t.Fatalf("B3 added: %v", h)
	}
}
