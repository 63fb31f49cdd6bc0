package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// receiver is a real OTLP/HTTP receiver: it decodes every export with the
// official generated types. status, when set, is answered instead.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	spans  int // spans received
	posts  int // exports received, decoded or not
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.posts++
		if r.status != 0 {
			http.Error(w, "no", r.status)
			return
		}
		var msg collectortrace.ExportTraceServiceRequest
		if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &msg) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		for _, rs := range msg.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans += len(ss.Spans)
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) counts() (spans, posts int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spans, r.posts
}

// roundRobinOver returns a RoundRobin of OTLP/HTTP exporters to the
// receivers.
func roundRobinOver(t *testing.T, now func() time.Time, rs ...*receiver) *RoundRobin {
	t.Helper()
	var targets []Target
	for _, r := range rs {
		exp, err := NewHTTPExporter(ExporterOptions{Endpoint: r.srv.URL, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, Target{Address: r.srv.Listener.Addr().String(), Exporter: exp})
	}
	rr, err := NewRoundRobin(RoundRobinOptions{Targets: targets, now: now})
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// spansThrough ends n sampled spans on a tracer exporting each in its own
// batch, and shuts it down.
func spansThrough(t *testing.T, exp Exporter, n int) Stats {
	t.Helper()
	tr := New(Options{SampleRate: 1, Exporter: exp, BatchSize: 1, QueueSize: n})
	for range n {
		tr.Start(http.Header{}, KindClient, "GET x").End(200)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return tr.Stats()
}

// TestRoundRobinSpreads: batches alternate over the cluster's endpoints.
func TestRoundRobinSpreads(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	st := spansThrough(t, roundRobinOver(t, nil, a, b), 10)
	if st.Exported != 10 || st.Failed != 0 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if sa, _ := a.counts(); sa != 5 {
		t.Errorf("a received %d spans, want 5", sa)
	}
	if sb, _ := b.counts(); sb != 5 {
		t.Errorf("b received %d spans, want 5", sb)
	}
}

// TestRoundRobinFailsOver: with one endpoint down (refusing connections,
// or answering 503), every span reaches the other, none is lost, and the
// dead one is skipped while it backs off.
func TestRoundRobinFailsOver(t *testing.T) {
	for _, down := range []string{"refusing", "503"} {
		t.Run(down, func(t *testing.T) {
			up, dead := newReceiver(t), newReceiver(t)
			if down == "503" {
				dead.status = http.StatusServiceUnavailable
			} else {
				dead.srv.Close()
			}
			st := spansThrough(t, roundRobinOver(t, nil, dead, up), 10)
			if st.Exported != 10 || st.Failed != 0 {
				t.Fatalf("stats %+v, want 10 exported", st)
			}
			if s, _ := up.counts(); s != 10 {
				t.Errorf("the live receiver got %d spans, want 10", s)
			}
			if _, posts := dead.counts(); down == "503" && posts != 1 {
				t.Errorf("the failing receiver was tried %d times, want once (then backing off)", posts)
			}
		})
	}
}

// TestRoundRobinAllDown: when every endpoint fails the batch is lost and
// counted, and each endpoint was tried once.
func TestRoundRobinAllDown(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	a.status, b.status = http.StatusBadGateway, http.StatusTooManyRequests
	st := spansThrough(t, roundRobinOver(t, nil, a, b), 1)
	if st.Exported != 0 || st.Failed != 1 {
		t.Fatalf("stats %+v, want 1 failed", st)
	}
	_, pa := a.counts()
	_, pb := b.counts()
	if pa != 1 || pb != 1 {
		t.Errorf("exports tried %d and %d times, want once each", pa, pb)
	}
}

// TestRoundRobinNotRetryable: a refusal another endpoint would repeat (400)
// is not sent again.
func TestRoundRobinNotRetryable(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	a.status = http.StatusBadRequest
	err := roundRobinOver(t, nil, a, b).Export(context.Background(), nil)
	var ee *ExportError
	if !errors.As(err, &ee) || ee.HTTPStatus != 400 {
		t.Fatalf("err = %v, want the 400", err)
	}
	if _, pb := b.counts(); pb != 0 {
		t.Fatalf("a 400 was sent again to the next endpoint")
	}
}

// fakeExporter fails while down.
type fakeExporter struct {
	mu    sync.Mutex
	down  bool
	calls int
}

func (f *fakeExporter) Export(context.Context, []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return errors.New("connection refused")
	}
	return nil
}

func (f *fakeExporter) set(down bool) (calls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down, calls = down, f.calls
	f.calls = 0
	return calls
}

// TestRoundRobinBackoff: a failed endpoint is skipped for 1s, 2s, 4s...
// while another is up, then tried again; once it answers it is back in
// the rotation.
func TestRoundRobinBackoff(t *testing.T) {
	var mu sync.Mutex
	clock := time.Unix(1_700_000_000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	a, b := &fakeExporter{down: true}, &fakeExporter{}
	rr, _ := NewRoundRobin(RoundRobinOptions{Targets: []Target{{"a", a}, {"b", b}}, now: now})
	export := func(n int) {
		for range n {
			if err := rr.Export(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// calls returns how many exports each got since the last call, and
	// sets whether a is down.
	calls := func(aDown bool) (int, int) { return a.set(aDown), b.set(false) }
	export(10)
	if ca, cb := calls(true); ca != 1 || cb != 10 {
		t.Fatalf("a down: a tried %d times, b %d; want 1 and 10", ca, cb)
	}
	advance(1100 * time.Millisecond) // past the first backoff (1s)
	export(10)
	if ca, cb := calls(true); ca != 1 || cb != 10 {
		t.Fatalf("after 1s: a tried %d times, b %d; want 1 and 10", ca, cb)
	}
	advance(1100 * time.Millisecond) // the second backoff is 2s
	export(10)
	if ca, cb := calls(false); ca != 0 || cb != 10 {
		t.Fatalf("1.1s into a 2s backoff: a tried %d times, b %d", ca, cb)
	}
	advance(time.Second) // a answers again
	export(10)
	if ca, cb := calls(false); ca != 5 || cb != 5 {
		t.Fatalf("a back: a exported %d batches, b %d; want 5 each", ca, cb)
	}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("tracing: OTLP/HTTP export: %w", errors.New("connection refused")), true},
		{&ExportError{HTTPStatus: 503}, true},
		{&ExportError{HTTPStatus: 429}, true},
		{&ExportError{HTTPStatus: 400}, false},
		{&ExportError{HTTPStatus: 401}, false},
		{&ExportError{GRPCCode: 14}, true}, // UNAVAILABLE
		{&ExportError{GRPCCode: 4}, true},  // DEADLINE_EXCEEDED
		{&ExportError{GRPCCode: 3}, false}, // INVALID_ARGUMENT
		{&ExportError{GRPCCode: 12}, false},
	} {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%v) = %v", tc.err, got)
		}
	}
}
