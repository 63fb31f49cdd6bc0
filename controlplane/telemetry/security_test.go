package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestPushOnlyForItself: a proxy can report only for a workload registered
// with its own identity, and cannot make Prometheus scrape another host.
func TestPushOnlyForItself(t *testing.T) {
	p := contract(t)
	tel := New(Options{
		PeerIdentity: func(r *http.Request) (string, string, error) {
			return p.Namespace, r.Header.Get("x-test-identity"), nil
		},
		Authorize: func(ns, workload, identity string) (string, error) {
			if ns+"/"+workload == p.Namespace+"/"+p.Workload && identity == "web" {
				return "127.0.0.2", nil
			}
			return "", errors.New("not yours")
		},
	})
	post := func(identity string, push Push) int {
		b, _ := json.Marshal(push)
		req := httptest.NewRequest(http.MethodPost, PushPath, bytes.NewReader(b))
		req.RemoteAddr = "10.9.9.9:40000"
		req.Header.Set("x-test-identity", identity)
		rec := httptest.NewRecorder()
		tel.PushHandler().ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post("attacker", p); code != http.StatusForbidden {
		t.Fatalf("another identity reported for %s: %d", p.Workload, code)
	}
	evil := p
	evil.Admin = "169.254.169.254:80"
	if code := post("web", evil); code != http.StatusOK {
		t.Fatalf("own push refused: %d", code)
	}
	for _, g := range tel.Targets() {
		for _, target := range g.Targets {
			if target != "127.0.0.2:80" {
				t.Fatalf("a pushed foreign host became a scrape target: %s", target)
			}
		}
	}
}

// TestSeriesBounded: edges that churn do not grow the window without
// bound: old series leave it, and one proxy keeps at most
// MaxSeriesPerProxy.
func TestSeriesBounded(t *testing.T) {
	p := contract(t)
	c := &clock{time.Unix(1_800_000_000, 0)}
	tel := New(Options{Now: c.now})
	edge := p.Edges[0]
	for round := range 200 {
		q := p
		q.Edges = nil
		for i := range 100 {
			e := edge
			e.Version = fmt.Sprintf("v%d-%d", round, i)
			e.Requests, e.Success = uint64(round+1), uint64(round+1)
			q.Edges = append(q.Edges, e)
		}
		tel.Ingest("web", "127.0.0.1", q)
		c.t = c.t.Add(time.Second)
	}
	tel.mu.Lock()
	defer tel.mu.Unlock()
	for _, ps := range tel.proxies {
		if n := len(ps.series); n > MaxSeriesPerProxy || n > 100*(tel.slots+1) {
			t.Fatalf("%d series kept for one proxy", n)
		}
	}
}
