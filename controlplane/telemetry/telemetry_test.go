package telemetry

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// contract reads the push the proxy encodes (pinned by proxy/telemetry).
func contract(t *testing.T) Push {
	t.Helper()
	b, err := os.ReadFile("../../proxy/telemetry/testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	var p Push
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("the proxy's push no longer decodes: %v", err)
	}
	return p
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func scale(p Push, k uint64) Push {
	q := p
	q.Edges = nil
	for _, e := range p.Edges {
		e.Requests *= k
		e.Success *= k
		b := make([]uint64, len(e.Buckets))
		for i, v := range e.Buckets {
			b[i] = v * k
		}
		e.Buckets = b
		q.Edges = append(q.Edges, e)
	}
	return q
}

func TestContractAndDeltas(t *testing.T) {
	p := contract(t)
	if p.Workload != "web-1" || len(p.Edges) != 3 || len(p.Samples) != 1 || p.Admin != "127.0.0.2:15000" || len(p.BoundsMS) != 22 {
		t.Fatalf("push: %+v", p)
	}
	c := &clock{time.Unix(1_800_000_000, 0)}
	tel := New(Options{Now: c.now})
	// First push: baseline only.
	tel.Ingest("web", "127.0.0.2", p)
	if r := tel.Stats("", time.Minute); len(r.Services) != 0 {
		t.Fatalf("the first push counted: %+v", r.Services)
	}
	// Two seconds later the counters doubled: 100 more requests.
	c.t = c.t.Add(2 * time.Second)
	tel.Ingest("web", "127.0.0.2", scale(p, 2))
	r := tel.Stats("catalog.shop", time.Minute)
	if len(r.Services) != 1 {
		t.Fatalf("services: %+v", r.Services)
	}
	s := r.Services[0]
	if s.Requests != 100 || s.SuccessRate != 0.9 || s.MTLSShare != 1 || len(s.Versions) != 2 || s.Versions[1].Share != 0.1 {
		t.Fatalf("service: %+v", s)
	}
	if s.RPS != 100.0/60 || s.P50MS <= 0 || s.P99MS < 30 || s.P99MS > 50 {
		t.Errorf("rps/latency: %+v", s.Traffic)
	}
	if len(r.Edges) != 1 || r.Edges[0].Source != "shop/web" || r.Edges[0].SourceVersion != "v1" || r.Edges[0].Destination != "catalog.shop" {
		t.Errorf("edges: %+v", r.Edges)
	}
	// The edge is split by the versions that served it, as the service is.
	if e := r.Edges[0]; s.Success != 90 || e.Success != 90 || len(e.Versions) != 2 || e.Versions[1].Share != 0.1 || e.Versions[1].Requests != 10 {
		t.Errorf("edge versions: %+v", e)
	}
	if len(r.Workloads) != 0 {
		t.Errorf("workloads (filtered to catalog): %+v", r.Workloads)
	}
	if r := tel.Stats("web", time.Minute); len(r.Workloads) != 1 || r.Workloads[0].Requests != 1 {
		t.Errorf("inbound of web: %+v", r.Workloads)
	}
	// The proxy restarts: new boot id, small counters count whole.
	c.t = c.t.Add(2 * time.Second)
	q := scale(p, 1)
	q.Boot = "ffffffffffffffff"
	tel.Ingest("web", "127.0.0.2", q)
	if got := tel.Stats("catalog", time.Minute).Services[0].Requests; got != 200 {
		t.Errorf("after restart: %d requests, want 200", got)
	}
	// A counter that goes down without a boot change is a reset too: it
	// counts whole (here: zero).
	c.t = c.t.Add(2 * time.Second)
	q.Edges = scale(p, 0).Edges
	tel.Ingest("web", "127.0.0.2", q)
	if got := tel.Stats("catalog", time.Minute).Services[0].Requests; got != 200 {
		t.Errorf("reset to zero changed counts: %d", got)
	}
	q.Edges = scale(p, 1).Edges
	tel.Ingest("web", "127.0.0.2", q)
	if got := tel.Stats("catalog", time.Minute).Services[0].Requests; got != 300 {
		t.Errorf("after a reset: %d requests, want 300", got)
	}
	// The window slides: a 3 s window sees only the last two seconds' 200.
	if got := tel.Stats("catalog", 3*time.Second).Services; len(got) != 1 || got[0].Requests != 200 {
		t.Errorf("3s window: %+v", got)
	}
	c.t = c.t.Add(2 * time.Minute)
	if got := tel.Stats("", time.Minute).Services; len(got) != 0 {
		t.Errorf("old data still reported: %+v", got)
	}
}

func TestPushHandler(t *testing.T) {
	p := contract(t)
	tel := New(Options{PeerIdentity: func(r *http.Request) (string, string, error) { return r.Header.Get("X-Test-Ns"), "web", nil }})
	post := func(ns string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/v1/telemetry", bytes.NewReader(body))
		req.Header.Set("X-Test-Ns", ns)
		rec := httptest.NewRecorder()
		tel.PushHandler().ServeHTTP(rec, req)
		return rec
	}
	body, _ := json.Marshal(p)
	if rec := post("other", body); rec.Code != http.StatusForbidden {
		t.Errorf("another namespace's push: %d", rec.Code)
	}
	if rec := post("shop", []byte("{")); rec.Code != http.StatusBadRequest {
		t.Errorf("bad JSON: %d", rec.Code)
	}
	rec := post("shop", body)
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"tap":false}` {
		t.Fatalf("push: %d %s", rec.Code, rec.Body)
	}
	_, cancel, _ := tel.Subscribe("", 1)
	defer cancel()
	if rec := post("shop", body); strings.TrimSpace(rec.Body.String()) != `{"tap":true}` {
		t.Errorf("tap not announced: %s", rec.Body)
	}
	if got := tel.Refused(); got["wrong_namespace"] != 1 || got["bad_request"] != 1 {
		t.Errorf("refused: %v", got)
	}
}

func TestIdentityFromCertificate(t *testing.T) {
	u, _ := url.Parse("spiffe://weft.local/ns/shop/sa/web")
	r := httptest.NewRequest("POST", "/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{u}}}}
	ns, id, err := FromVerifiedCertificate(r)
	if err != nil || ns != "shop" || id != "web" {
		t.Fatalf("%s %s %v", ns, id, err)
	}
	r.TLS = nil
	if _, _, err := FromVerifiedCertificate(r); err == nil {
		t.Fatal("no certificate accepted")
	}
	cp, _ := url.Parse("spiffe://weft.local/control-plane")
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{cp}}}}
	if _, _, err := FromVerifiedCertificate(r); err == nil {
		t.Fatal("non-workload ID accepted")
	}
}

func TestTapStream(t *testing.T) {
	p := contract(t)
	tel := New(Options{})
	srv := httptest.NewServer(tel.APIHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/tap?service=catalog&max=2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatal(resp.Header)
	}
	// Wait for the subscription, then push samples for two services.
	for deadline := time.Now().Add(2 * time.Second); ; {
		tel.mu.Lock()
		n := len(tel.subs)
		tel.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no subscription")
		}
		time.Sleep(5 * time.Millisecond)
	}
	other := p.Samples[0]
	other.Destination = "reviews.shop"
	p.Samples = append(p.Samples, other, p.Samples[0])
	tel.Ingest("web", "", p)
	sc := bufio.NewScanner(resp.Body)
	var got []Sample
	for sc.Scan() {
		var s Sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if len(got) != 2 || got[0].Destination != "catalog.shop" || got[1].Destination != "catalog.shop" || got[0].Proxy != "shop/web-1" {
		t.Fatalf("tap: %+v", got)
	}
	tel.mu.Lock()
	n := len(tel.subs)
	tel.mu.Unlock()
	if n != 0 {
		t.Error("subscription left behind")
	}
}

func TestSlowSubscriberDrops(t *testing.T) {
	p := contract(t)
	tel := New(Options{})
	ch, cancel, dropped := tel.Subscribe("", 2)
	for range 5 {
		tel.Ingest("web", "", p)
	}
	if len(ch) != 2 || dropped() != 3 {
		t.Fatalf("buffered %d dropped %d", len(ch), dropped())
	}
	cancel()
	cancel()
}

func TestTargetsAndStatsAPI(t *testing.T) {
	p := contract(t)
	c := &clock{time.Unix(1_800_000_000, 0)}
	tel := New(Options{Now: c.now, Workloads: func() []Workload {
		return []Workload{{Name: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web", "weft.dev/x": "y"}},
			{Name: "silent", Namespace: "shop"}}
	}})
	tel.Ingest("web", "10.0.0.9", p)
	q := p
	q.Workload, q.Admin = "other", "0.0.0.0:15000"
	tel.Ingest("web", "10.0.0.9", q)
	srv := httptest.NewServer(tel.APIHandler())
	defer srv.Close()
	var groups []TargetGroup
	getJSON(t, srv.URL+"/v1/prometheus/targets", &groups)
	if len(groups) != 1 || groups[0].Targets[0] != "127.0.0.2:15000" || groups[0].Labels["workload"] != "web-1" ||
		groups[0].Labels["namespace"] != "shop" || groups[0].Labels["weft_dev_x"] != "y" || groups[0].Labels["identity"] != "web" {
		t.Fatalf("targets: %+v", groups)
	}
	// Without a registry, every recent proxy; an unspecified admin host
	// is the proxy's address.
	tel.opts.Workloads = nil
	if g := tel.Targets(); len(g) != 2 || g[0].Targets[0] != "10.0.0.9:15000" {
		t.Fatalf("targets: %+v", g)
	}
	c.t = c.t.Add(2 * time.Minute)
	if g := tel.Targets(); len(g) != 0 {
		t.Fatalf("stale targets: %+v", g)
	}
	var rep Report
	getJSON(t, srv.URL+"/v1/stats?window=30s", &rep)
	if rep.Window != "30s" {
		t.Errorf("window %q", rep.Window)
	}
	if resp, _ := http.Get(srv.URL + "/v1/stats?window=x"); resp.StatusCode != 400 {
		t.Errorf("bad window: %d", resp.StatusCode)
	}
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}
