package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/metrics"
	"github.com/weftmesh/weft/proxy/tracing"
)

// scrape returns GET /metrics as text.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// expect fails unless the exposition has every line of want.
func expect(t *testing.T, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, "\n"+w+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", w, grep(text, "weft_proxy_"))
		}
	}
}

func grep(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Before anything is lost, every reason is exported, at 0 (so alerts on
// a rate have a series to start from).
func TestLossCountersStartAtZero(t *testing.T) {
	m := metrics.New(metrics.Peer{}, metrics.Options{NoRuntime: true})
	m.ObserveAccessLog(func() metrics.AccessLogCounts { return metrics.AccessLogCounts{} })
	m.ObserveSpans(func() metrics.SpanCounts { return metrics.SpanCounts{} })
	expect(t, scrape(t, m),
		`weft_proxy_access_log_dropped_total{reason="queue_full"} 0`,
		`weft_proxy_access_log_dropped_total{reason="write_error"} 0`,
		`weft_proxy_spans_dropped_total{reason="queue_full"} 0`,
		`weft_proxy_spans_dropped_total{reason="export_failed"} 0`,
		`weft_proxy_spans_exported_total 0`,
		`# TYPE weft_proxy_spans_dropped_total counter`)
}

// stalled blocks writes until released, then fails them or not.
type stalled struct {
	release chan struct{}
	mu      sync.Mutex
	fail    bool
}

func (w *stalled) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return 0, errors.New("no space left on device")
	}
	return len(p), nil
}

// flaky exports: blocked until released, then failing the first n.
type flaky struct {
	release chan struct{}
	mu      sync.Mutex
	fail    int
}

func (e *flaky) Export(ctx context.Context, _ []byte) error {
	select {
	case <-e.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail > 0 {
		e.fail--
		return &tracing.ExportError{HTTPStatus: http.StatusServiceUnavailable}
	}
	return nil
}

// TestLossCounters forces every kind of loss through a real access log and
// a real tracer and reads it back from the registry: a stalled writer
// fills the log's queue, then its writes fail; a stalled exporter fills
// the span queue, then some exports fail.
func TestLossCounters(t *testing.T) {
	w := &stalled{release: make(chan struct{}), fail: true}
	log, err := accesslog.New(accesslog.Options{Writer: w, Buffer: 4, Fields: []string{"status"}, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	exp := &flaky{release: make(chan struct{}), fail: 2}
	var counters tracing.Counters
	tr := tracing.New(tracing.Options{SampleRate: 1, Exporter: exp, QueueSize: 4, BatchSize: 1, Counters: &counters})

	m := metrics.New(metrics.Peer{}, metrics.Options{NoRuntime: true})
	m.ObserveAccessLog(func() metrics.AccessLogCounts {
		st := log.Stats()
		return metrics.AccessLogCounts{QueueFull: st.Dropped, WriteError: st.WriteErrors}
	})
	m.ObserveSpans(func() metrics.SpanCounts {
		st := counters.Stats()
		return metrics.SpanCounts{Exported: st.Exported, QueueFull: st.Dropped, ExportFailed: st.Failed}
	})

	// bufio holds 64 KiB before it writes: lines of 14 bytes overflow it
	// after ~4700, and the writer then blocks on its first write.
	const lines, spans = 10000, 100
	for range lines {
		log.Log(&accesslog.Entry{Status: 200})
	}
	for range spans {
		tr.Start(http.Header{}, tracing.KindClient, "GET x").End(200)
	}
	close(w.release)
	close(exp.release)
	if err := log.Close(); err == nil {
		t.Fatal("the access log's write errors were not reported")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	ls, ss := log.Stats(), counters.Stats()
	if ls.Dropped == 0 || ls.WriteErrors != ls.Written || ls.Written+ls.Dropped != lines {
		t.Fatalf("access log stats %+v: want drops, and every written line lost", ls)
	}
	if ss.Dropped == 0 || ss.Failed != 2 || ss.Exported+ss.Dropped+ss.Failed != spans {
		t.Fatalf("span stats %+v: want drops, 2 failed, the rest exported", ss)
	}
	expect(t, scrape(t, m),
		`weft_proxy_access_log_dropped_total{reason="queue_full"} `+itoa(ls.Dropped),
		`weft_proxy_access_log_dropped_total{reason="write_error"} `+itoa(ls.WriteErrors),
		`weft_proxy_spans_dropped_total{reason="queue_full"} `+itoa(ss.Dropped),
		`weft_proxy_spans_dropped_total{reason="export_failed"} 2`,
		`weft_proxy_spans_exported_total `+itoa(ss.Exported))
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
