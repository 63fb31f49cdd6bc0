package telemetry

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/stats"
)

var update = flag.Bool("update", false, "rewrite testdata/push.json")

func fixture() (*stats.Stats, []Sample) {
	st := stats.New()
	for i := range 90 {
		st.Record(stats.EdgeKey{Direction: "outbound", Service: "catalog.shop", Version: "v1", MTLS: true}, 200, time.Duration(i%10)*time.Millisecond)
	}
	for range 10 {
		st.Record(stats.EdgeKey{Direction: "outbound", Service: "catalog.shop", Version: "v2", MTLS: true}, 503, 40*time.Millisecond)
	}
	st.Record(stats.EdgeKey{Direction: "inbound", Service: "inbound|8080", Version: "v1", MTLS: true, Peer: "spiffe://weft.local/ns/shop/sa/loadgen"}, 200, time.Millisecond)
	samples := []Sample{{Time: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), Direction: "outbound", Method: "GET", Authority: "catalog.shop",
		Path: "/items", Status: 200, LatencyMS: 1.25, Source: "web", Destination: "catalog.shop", Version: "v1", MTLS: true}}
	return st, samples
}

// TestPushContract pins the JSON the control plane decodes
// (controlplane/telemetry reads the same file).
func TestPushContract(t *testing.T) {
	st, samples := fixture()
	p := New(Options{Stats: st, Workload: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web", "version": "v1"}, Admin: "127.0.0.2:15000"})
	p.boot = "0123456789abcdef"
	p.tapping.Store(true)
	for _, s := range samples {
		p.Sample(s)
	}
	got, err := json.MarshalIndent(p.build(time.Date(2026, 11, 1, 12, 0, 2, 0, time.UTC)), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		os.WriteFile("testdata/push.json", got, 0o644)
		return
	}
	want, err := os.ReadFile("testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("push differs from testdata/push.json (go test ./proxy/telemetry -update, then check controlplane/telemetry):\n%s", got)
	}
}

func TestPushLoopAndTap(t *testing.T) {
	var mu sync.Mutex
	var pushes []Push
	tap := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != Path {
			http.NotFound(w, r)
			return
		}
		var p Push
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &p); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		pushes = append(pushes, p)
		json.NewEncoder(w).Encode(Reply{Tap: tap})
		mu.Unlock()
	}))
	defer srv.Close()
	st, _ := fixture()
	p := New(Options{URL: srv.URL + Path, Client: srv.Client(), Stats: st, Workload: "web-1", Namespace: "shop", Interval: 20 * time.Millisecond})
	p.Sample(Sample{Path: "/ignored"}) // nobody taps yet
	if p.Tapping() {
		t.Fatal("tapping before anyone asked")
	}
	mu.Lock()
	tap = true
	mu.Unlock()
	if err := p.PushOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !p.Tapping() {
		t.Fatal("the reply's tap flag was not taken")
	}
	for i := range 1000 {
		p.Sample(Sample{Path: "/x", Status: 200 + i%2})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go p.Run(ctx)
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := len(pushes)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	mu.Lock()
	defer mu.Unlock()
	if len(pushes) < 3 {
		t.Fatalf("%d pushes", len(pushes))
	}
	if len(pushes[0].Samples) != 0 {
		t.Error("samples taken while nobody tapped")
	}
	if n := len(pushes[1].Samples); n != MaxSamples {
		t.Errorf("second push has %d samples, want %d", n, MaxSamples)
	}
	if len(pushes[2].Samples) != 0 || pushes[2].Boot != pushes[0].Boot || pushes[2].Edges[1].Requests != 90 {
		t.Errorf("third push: %+v", pushes[2])
	}
}

func BenchmarkSampleNotTapping(b *testing.B) {
	p := New(Options{})
	for b.Loop() {
		if p.Tapping() {
			p.Sample(Sample{})
		}
	}
}
