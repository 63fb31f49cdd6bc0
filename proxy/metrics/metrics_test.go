package metrics

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

var self = Peer{Workload: "web", Namespace: "shop", Principal: "spiffe://weft.local/ns/shop/sa/web", Version: "v1"}

// series counts the series of every metric family in the registry.
func series(t *testing.T, m *Metrics) map[string]int {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		out[mf.GetName()] = len(mf.GetMetric())
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestCardinalityBounded(t *testing.T) {
	m := New(self, Options{NoRuntime: true})
	m.SetServices([]string{"catalog.shop"})
	for i := range 10000 {
		// Distinct paths never reach the metrics; distinct hosts the
		// config does not know collapse to "unknown".
		m.Request(RequestInfo{Reporter: Source, Service: fmt.Sprintf("host-%d.example.com", i), Protocol: ProtocolHTTP,
			ResponseCode: 200, MTLS: true, Duration: time.Millisecond})
		m.Request(RequestInfo{Reporter: Source, Service: "catalog.shop", Protocol: ProtocolHTTP, ResponseCode: 200, MTLS: true,
			Peer:     Peer{Workload: "catalog", Namespace: "shop", Version: "v1", Principal: "spiffe://weft.local/ns/shop/sa/catalog"},
			Duration: time.Millisecond})
	}
	got := series(t, m)
	if got["weft_requests_total"] != 2 {
		t.Fatalf("weft_requests_total has %d series, want 2", got["weft_requests_total"])
	}
	if n, _ := m.Series(); n != 2 {
		t.Fatalf("Series() = %d, want 2", n)
	}
}

func TestMaxSeriesOverflow(t *testing.T) {
	m := New(self, Options{NoRuntime: true, MaxSeries: 10})
	for i := range 1000 {
		m.Request(RequestInfo{Reporter: Destination, Service: "catalog.shop", Protocol: ProtocolHTTP, ResponseCode: 200,
			Peer: Peer{Workload: fmt.Sprintf("client-%d", i), Namespace: "shop"}})
	}
	if n := series(t, m)["weft_requests_total"]; n > 11 {
		t.Fatalf("%d series, want at most 11 (10 + overflow)", n)
	}
}

func TestLabels(t *testing.T) {
	m := New(self, Options{NoRuntime: true})
	long := strings.Repeat("x", 500)
	m.Request(RequestInfo{Reporter: Source, Service: "catalog.shop", Protocol: ProtocolGRPC, ResponseCode: 503, GRPCStatus: "14",
		ResponseFlags: "UH,bogus", MTLS: true, Duration: 3 * time.Millisecond, RequestBytes: 10, ResponseBytes: 1000,
		Peer: Peer{Workload: long, Namespace: "shop", Principal: "spiffe://weft.local/ns/shop/sa/catalog", Version: "v2"}})
	m.Request(RequestInfo{Reporter: Destination, Service: "web.shop", Protocol: ProtocolHTTP, ResponseCode: 200,
		Peer: Peer{Workload: "lb", Namespace: "shop", Principal: "spiffe://weft.local/ns/shop/sa/lb"}})
	mfs, _ := m.Registry().Gather()
	var found int
	for _, mf := range mfs {
		if mf.GetName() != "weft_requests_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := labels(s)
			switch l["reporter"] {
			case "source":
				found++
				want := map[string]string{
					"source_workload": "web", "source_workload_namespace": "shop", "source_principal": "spiffe://weft.local/ns/shop/sa/web",
					"source_version": "v1", "destination_workload_namespace": "shop", "destination_version": "v2",
					"destination_principal": "spiffe://weft.local/ns/shop/sa/catalog",
					"destination_service":   "catalog.shop", "destination_service_name": "catalog", "destination_service_namespace": "shop",
					"request_protocol": "grpc", "response_code": "503", "grpc_response_status": "14", "response_flags": "UH",
					"connection_security_policy": "mutual_tls",
				}
				for k, v := range want {
					if l[k] != v {
						t.Errorf("%s = %q, want %q", k, l[k], v)
					}
				}
				if n := len(l["destination_workload"]); n != MaxLabelLen {
					t.Errorf("destination_workload is %d bytes, want %d", n, MaxLabelLen)
				}
			case "destination":
				found++
				// Plaintext: no principals; the client is the source.
				if l["source_workload"] != "lb" || l["source_principal"] != Unknown || l["destination_workload"] != "web" ||
					l["connection_security_policy"] != "none" || l["destination_version"] != "v1" || l["response_flags"] != "-" {
					t.Errorf("destination labels: %v", l)
				}
			}
		}
	}
	if found != 2 {
		t.Fatalf("found %d request series, want 2", found)
	}
}

func TestTCPAndHealth(t *testing.T) {
	m := New(self, Options{})
	c := m.TCPOpen(ConnInfo{Reporter: Source, Service: "db.shop", MTLS: true, Peer: Peer{Workload: "db", Namespace: "shop"}})
	c.Sent(100)
	c.Received(40)
	c.Close()
	c.Close()
	m.SetXDSConnected(true)
	m.SetConfigVersion("listener", "v1")
	m.SetConfigVersion("listener", "v2")
	m.NACK("cluster")
	m.SetCertificateExpiry(time.Unix(1800000000, 0))

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`weft_tcp_connections_opened_total{`,
		`weft_tcp_connections_closed_total{`,
		`weft_proxy_xds_connected 1`,
		`weft_proxy_config_info{type="listener",version="v2"} 1`,
		`weft_proxy_xds_nacks_total{type="cluster"} 1`,
		`weft_proxy_certificate_expiry_timestamp_seconds 1.8e+09`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, `weft_proxy_config_info{type="listener",version="v1"}`) {
		t.Error("the old config version is still exported")
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "weft_tcp_sent_bytes_total{") && !strings.HasSuffix(line, " 100") {
			t.Errorf("sent: %s", line)
		}
		if strings.HasPrefix(line, "weft_tcp_connections_closed_total{") && !strings.HasSuffix(line, " 1") {
			t.Errorf("closed: %s", line)
		}
	}
}

func TestConcurrent(t *testing.T) {
	m := New(self, Options{NoRuntime: true})
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				m.Request(RequestInfo{Reporter: Source, Service: "catalog.shop", ResponseCode: 200 + (i+g)%3,
					Peer: Peer{Workload: "catalog", Namespace: "shop"}})
			}
		}()
	}
	for range 8 {
		<-done
	}
	if n := series(t, m)["weft_requests_total"]; n != 3 {
		t.Fatalf("%d series, want 3", n)
	}
}

func BenchmarkRequest(b *testing.B) {
	m := New(self, Options{NoRuntime: true})
	m.SetServices([]string{"catalog.shop"})
	ri := RequestInfo{Reporter: Source, Service: "catalog.shop", Protocol: ProtocolHTTP, ResponseCode: 200, MTLS: true,
		Peer:     Peer{Workload: "catalog", Namespace: "shop", Version: "v1", Principal: "spiffe://weft.local/ns/shop/sa/catalog"},
		Duration: 2 * time.Millisecond, RequestBytes: 120, ResponseBytes: 4000}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request(ri)
		}
	})
}

// BenchmarkWithLabelValues is what Request would cost without the cache.
func BenchmarkWithLabelValues(b *testing.B) {
	m := New(self, Options{NoRuntime: true})
	lv := []string{"source", "web", "shop", "spiffe://weft.local/ns/shop/sa/web", "v1", "catalog", "shop",
		"spiffe://weft.local/ns/shop/sa/catalog", "catalog.shop", "catalog", "shop", "v1", "http", "200", "", "-", "mutual_tls"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.requests.WithLabelValues(lv...).Inc()
			m.duration.WithLabelValues(lv...).Observe(2)
			m.reqBytes.WithLabelValues(lv...).Observe(120)
			m.respBytes.WithLabelValues(lv...).Observe(4000)
		}
	})
}
