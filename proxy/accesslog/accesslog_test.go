package accesslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func sample() *Entry {
	return &Entry{
		StartTime: time.Date(2026, 11, 1, 12, 0, 0, 123456789, time.UTC), Duration: 1500 * time.Microsecond,
		Method: "GET", Authority: "catalog.shop", Path: "/items?q=\"x\"\n<script>", Protocol: "HTTP/1.1", Status: 200,
		BytesReceived: 0, BytesSent: 1234, UpstreamHost: "127.0.0.2:15006", UpstreamCluster: "outbound|80||catalog.shop",
		SourceAddress: "127.0.0.1:5000", DestinationPrincipal: "spiffe://weft.local/ns/shop/sa/catalog",
		RequestID: "abc", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", UserAgent: "curl/8 \xff", XForwardedFor: "10.0.0.1",
	}
}

func TestEncodeEveryField(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Options{Writer: &buf})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(sample())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if len(m) != len(DefaultFields) {
		t.Errorf("%d fields, want %d", len(m), len(DefaultFields))
	}
	want := map[string]any{
		"start_time": "2026-11-01T12:00:00.123456789Z", "duration_ms": 1.5, "method": "GET", "path": "/items?q=\"x\"\n<script>",
		"status": 200.0, "grpc_status": nil, "bytes_sent": 1234.0, "source_principal": nil, "response_flags": "-",
		"user_agent": "curl/8 \uFFFD", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if !strings.HasSuffix(buf.String(), "}\n") || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("not one line: %q", buf.String())
	}
}

func TestFieldSelection(t *testing.T) {
	if _, err := New(Options{Writer: &bytes.Buffer{}, Fields: []string{"status", "nope"}}); err == nil {
		t.Fatal("unknown field accepted")
	}
	fields, err := ParseFields("status, method,path")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l, _ := New(Options{Writer: &buf, Fields: fields})
	l.Log(sample())
	l.Close()
	if got := buf.String(); got != `{"status":200,"method":"GET","path":"/items?q=\"x\"\n\u003cscript\u003e"}`+"\n" {
		t.Errorf("got %s", got)
	}
}

// blockingWriter blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	l, _ := New(Options{Writer: w, Buffer: 8, Fields: []string{"status"}})
	start := time.Now()
	// bufio holds 64 KiB before it writes; lines are 14 bytes, so fill it
	// and the queue well past their size.
	for range 20000 {
		l.Log(&Entry{Status: 200})
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Log blocked: %v", d)
	}
	if l.Dropped() == 0 {
		t.Fatal("nothing dropped with a stalled writer")
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := l.Written() + l.Dropped(); got != 20000 {
		t.Errorf("written %d + dropped %d = %d, want 20000", l.Written(), l.Dropped(), got)
	}
	l.Log(&Entry{Status: 200}) // after Close: dropped, no panic
}

func TestFileAndFlushInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := New(Options{Path: path, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(sample())
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Count(b, []byte("\n")) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("line not flushed by the interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkLog(b *testing.B) {
	var buf bytes.Buffer
	l, _ := New(Options{Writer: &buf, Buffer: 1 << 16})
	e := sample()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Log(e)
		}
	})
	l.Close()
}

// failingWriter fails the writes whose number (from 1) is in fail,
// writing nothing of them.
type failingWriter struct {
	mu   sync.Mutex
	n    int
	fail map[int]bool
	buf  bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if w.fail[w.n] {
		return 0, errors.New("disk full")
	}
	return w.buf.Write(p)
}

func (w *failingWriter) lines() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Count(w.buf.Bytes(), []byte("\n"))
}

// TestWriteErrorsCounted: a write error loses the lines it held, counted,
// and the lines after it are written: every line handed to the output is
// either in it or counted lost.
func TestWriteErrorsCounted(t *testing.T) {
	for _, tc := range []struct {
		name string
		big  bool // lines of about 20 KiB: bufio writes out mid-line
		fail []int
	}{
		{name: "small lines, first flush fails", fail: []int{1}},
		{name: "small lines, every flush fails", fail: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
		{name: "big lines, writes 2 and 5 fail", big: true, fail: []int{2, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &failingWriter{fail: map[int]bool{}}
			for _, n := range tc.fail {
				w.fail[n] = true
			}
			l, _ := New(Options{Writer: w, FlushInterval: 5 * time.Millisecond})
			e := sample()
			if tc.big {
				long := strings.Repeat("x", 4096)
				e.Path, e.Authority, e.UserAgent, e.XForwardedFor, e.RouteName = long, long, long, long, long
			}
			const lines = 40
			for i := range lines {
				l.Log(e)
				if i%8 == 7 {
					time.Sleep(15 * time.Millisecond) // let a flush happen
				}
			}
			err := l.Close()
			if err == nil || !strings.Contains(err.Error(), "disk full") {
				t.Errorf("Close = %v, want the write error", err)
			}
			st := l.Stats()
			if st.Written != lines || st.Dropped != 0 {
				t.Fatalf("stats %+v, want %d written", st, lines)
			}
			if st.WriteErrors == 0 || st.WriteErrors == lines && len(tc.fail) < 20 {
				t.Errorf("%d lines lost to write errors", st.WriteErrors)
			}
			if got := uint64(w.lines()) + st.WriteErrors; got != lines {
				t.Errorf("%d lines in the output + %d lost = %d, want %d", w.lines(), st.WriteErrors, got, lines)
			}
		})
	}
}
