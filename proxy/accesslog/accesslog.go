// Package accesslog writes the proxy's access log: one JSON object per
// request per line (JSON lines, ready for Fluentd, Vector or Loki), with a
// configurable list of fields, to stdout or a file.
//
// Logging never blocks the data path: Log copies the entry into a bounded
// queue and returns; one goroutine encodes and writes. When the queue is
// full the entry is dropped and counted, so a slow disk or a stalled
// stdout costs log lines, never latency. A write error loses the lines
// buffered since the last flush, counted too, and the next lines are
// tried again (a full disk that frees up gets lines again). Stats has
// both counts.
package accesslog

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Field names, in the default order.
const (
	FieldStartTime            = "start_time"
	FieldDurationMS           = "duration_ms"
	FieldMethod               = "method"
	FieldAuthority            = "authority"
	FieldPath                 = "path"
	FieldProtocol             = "protocol"
	FieldStatus               = "status"
	FieldGRPCStatus           = "grpc_status"
	FieldBytesReceived        = "bytes_received"
	FieldBytesSent            = "bytes_sent"
	FieldUpstreamHost         = "upstream_host"
	FieldUpstreamCluster      = "upstream_cluster"
	FieldSourceAddress        = "source_address"
	FieldSourcePrincipal      = "source_principal"
	FieldDestinationPrincipal = "destination_principal"
	FieldRouteName            = "route_name"
	FieldRequestID            = "request_id"
	FieldTraceID              = "trace_id"
	FieldResponseFlags        = "response_flags"
	FieldUserAgent            = "user_agent"
	FieldXForwardedFor        = "x_forwarded_for"
)

// DefaultFields is every field, in the order written.
var DefaultFields = []string{
	FieldStartTime, FieldDurationMS, FieldMethod, FieldAuthority, FieldPath, FieldProtocol, FieldStatus,
	FieldGRPCStatus, FieldBytesReceived, FieldBytesSent, FieldUpstreamHost, FieldUpstreamCluster,
	FieldSourceAddress, FieldSourcePrincipal, FieldDestinationPrincipal, FieldRouteName, FieldRequestID,
	FieldTraceID, FieldResponseFlags, FieldUserAgent, FieldXForwardedFor,
}

// Entry is one request. Empty strings are written as null (JSON), except
// response_flags which is "-" when empty.
type Entry struct {
	StartTime            time.Time
	Duration             time.Duration
	Method               string
	Authority            string
	Path                 string
	Protocol             string // HTTP/1.1, HTTP/2, tcp
	Status               int    // 0 for none (a TCP connection)
	GRPCStatus           string
	BytesReceived        int64
	BytesSent            int64
	UpstreamHost         string
	UpstreamCluster      string
	SourceAddress        string
	SourcePrincipal      string
	DestinationPrincipal string
	RouteName            string
	RequestID            string
	TraceID              string
	ResponseFlags        string
	UserAgent            string
	XForwardedFor        string
}

// Options configure a Logger.
type Options struct {
	// Path is where to write: "" or "-" or "/dev/stdout" for standard
	// output, anything else a file opened for appending (created 0640).
	Path string
	// Writer, if set, replaces Path (tests, or a caller-owned sink).
	Writer io.Writer
	// Fields to write, in order (DefaultFields if empty). An unknown name
	// is an error.
	Fields []string
	// Buffer is how many entries may wait to be written (default 4096).
	Buffer int
	// FlushInterval bounds how long a written line may sit in the write
	// buffer (default 1s); 32 KiB of waiting lines are flushed at once.
	FlushInterval time.Duration
	// MaxFieldLen cuts string values longer than this many bytes (default
	// 4096), so one huge header cannot blow up a line.
	MaxFieldLen int
}

// Logger is an asynchronous access logger. Log is safe for concurrent use
// and never blocks; Close stops it.
type Logger struct {
	fields  []fieldFunc
	names   []string
	queue   chan Entry
	out     io.Writer
	closer  io.Closer
	flushIv time.Duration
	maxLen  int

	dropped     atomic.Uint64
	written     atomic.Uint64
	writeErrors atomic.Uint64
	closed      atomic.Bool
	stop        chan struct{}
	once        sync.Once
	done        chan struct{}
	err         atomic.Pointer[error]
}

type fieldFunc func(b []byte, e *Entry, max int) []byte

// New opens the output and starts the writer goroutine.
func New(o Options) (*Logger, error) {
	if o.Buffer <= 0 {
		o.Buffer = 4096
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxFieldLen <= 0 {
		o.MaxFieldLen = 4096
	}
	names := o.Fields
	if len(names) == 0 {
		names = DefaultFields
	}
	l := &Logger{queue: make(chan Entry, o.Buffer), flushIv: o.FlushInterval, maxLen: o.MaxFieldLen, done: make(chan struct{}), stop: make(chan struct{})}
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		f, ok := fieldFuncs[n]
		if !ok {
			return nil, fmt.Errorf("accesslog: unknown field %q (known: %s)", n, strings.Join(DefaultFields, ", "))
		}
		if seen[n] {
			return nil, fmt.Errorf("accesslog: field %q listed twice", n)
		}
		seen[n] = true
		l.fields = append(l.fields, f)
		l.names = append(l.names, n)
	}
	switch {
	case o.Writer != nil:
		l.out = o.Writer
	case o.Path == "" || o.Path == "-" || o.Path == "/dev/stdout":
		l.out = os.Stdout
	default:
		f, err := os.OpenFile(o.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("accesslog: %w", err)
		}
		l.out, l.closer = f, f
	}
	go l.run()
	return l, nil
}

// ParseFields splits a comma-separated field list (for a command-line
// flag) and checks every name.
func ParseFields(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, ok := fieldFuncs[f]; !ok {
			return nil, fmt.Errorf("accesslog: unknown field %q (known: %s)", f, strings.Join(DefaultFields, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// Log queues one entry; if the queue is full it is dropped and counted.
// It never blocks and takes no lock. Nil-safe. After Close entries are
// dropped (an entry logged while Close runs may be lost uncounted).
func (l *Logger) Log(e *Entry) {
	if l == nil {
		return
	}
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	select {
	case l.queue <- *e:
	default:
		l.dropped.Add(1)
	}
}

// Dropped counts entries lost because the queue was full (or after Close).
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Written counts lines handed to the output (some of which a write error
// may have lost since: Stats.WriteErrors).
func (l *Logger) Written() uint64 { return l.written.Load() }

// Stats are a logger's counters.
type Stats struct {
	// Written: lines handed to the output.
	Written uint64
	// Dropped: entries never queued, the queue being full (or the
	// logger closed).
	Dropped uint64
	// WriteErrors: lines of Written lost to a write error.
	WriteErrors uint64
}

// Stats returns the counters. Nil-safe (zero).
func (l *Logger) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	return Stats{Written: l.written.Load(), Dropped: l.dropped.Load(), WriteErrors: l.writeErrors.Load()}
}

// Close writes what is queued, flushes, and closes a file it opened.
// It returns the first write error, if any. Nil-safe.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	var err error
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.stop)
		<-l.done
		if l.closer != nil {
			if cerr := l.closer.Close(); cerr != nil {
				err = fmt.Errorf("accesslog: %w", cerr)
			}
		}
	})
	<-l.done
	if werr := l.loadErr(); werr != nil {
		return werr
	}
	return err
}

func (l *Logger) loadErr() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *Logger) run() {
	defer close(l.done)
	w := bufio.NewWriterSize(l.out, 64<<10)
	tick := time.NewTicker(l.flushIv)
	defer tick.Stop()
	var line []byte
	// pending counts the lines (whole or in part) in w's buffer: those a
	// failed write loses.
	var pending uint64
	lost := func(err error) {
		err = fmt.Errorf("accesslog: %w", err)
		l.err.CompareAndSwap(nil, &err) // the first, for Close
		l.writeErrors.Add(pending)
		pending = 0
		// bufio keeps a write error forever: start afresh, so that the
		// next lines are tried again.
		w.Reset(l.out)
	}
	write := func(e *Entry) {
		line = l.encode(line[:0], e)
		before := w.Buffered()
		l.written.Add(1)
		pending++
		if _, err := w.Write(line); err != nil {
			lost(err)
			return
		}
		if w.Buffered() != before+len(line) {
			// The buffer was written out on the way: only this line's
			// tail, if anything, is left in it.
			pending = 0
			if w.Buffered() > 0 {
				pending = 1
			}
		}
	}
	flush := func() {
		if err := w.Flush(); err != nil {
			lost(err)
			return
		}
		pending = 0
	}
	for {
		select {
		case e := <-l.queue:
			write(&e)
			// Write what is already queued, then flush if a lot waits.
			for n := len(l.queue); n > 0; n-- {
				e := <-l.queue
				write(&e)
			}
			if w.Buffered() > 32<<10 {
				flush()
			}
		case <-l.stop:
			for {
				select {
				case e := <-l.queue:
					write(&e)
				default:
					flush()
					return
				}
			}
		case <-tick.C:
			if w.Buffered() > 0 {
				flush()
			}
		}
	}
}

// encode appends e as one JSON line.
func (l *Logger) encode(b []byte, e *Entry) []byte {
	b = append(b, '{')
	for i, f := range l.fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, l.names[i]...)
		b = append(b, '"', ':')
		b = f(b, e, l.maxLen)
	}
	return append(b, '}', '\n')
}

func str(get func(*Entry) string) fieldFunc {
	return func(b []byte, e *Entry, max int) []byte { return appendString(b, get(e), max) }
}

func num(get func(*Entry) int64) fieldFunc {
	return func(b []byte, e *Entry, _ int) []byte { return strconv.AppendInt(b, get(e), 10) }
}

var fieldFuncs = map[string]fieldFunc{
	FieldStartTime: func(b []byte, e *Entry, _ int) []byte {
		if e.StartTime.IsZero() {
			return append(b, "null"...)
		}
		b = append(b, '"')
		b = e.StartTime.UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	},
	FieldDurationMS: func(b []byte, e *Entry, _ int) []byte {
		return strconv.AppendFloat(b, float64(e.Duration)/float64(time.Millisecond), 'f', 3, 64)
	},
	FieldMethod:    str(func(e *Entry) string { return e.Method }),
	FieldAuthority: str(func(e *Entry) string { return e.Authority }),
	FieldPath:      str(func(e *Entry) string { return e.Path }),
	FieldProtocol:  str(func(e *Entry) string { return e.Protocol }),
	FieldStatus: func(b []byte, e *Entry, _ int) []byte {
		if e.Status == 0 {
			return append(b, "null"...)
		}
		return strconv.AppendInt(b, int64(e.Status), 10)
	},
	FieldGRPCStatus:           str(func(e *Entry) string { return e.GRPCStatus }),
	FieldBytesReceived:        num(func(e *Entry) int64 { return e.BytesReceived }),
	FieldBytesSent:            num(func(e *Entry) int64 { return e.BytesSent }),
	FieldUpstreamHost:         str(func(e *Entry) string { return e.UpstreamHost }),
	FieldUpstreamCluster:      str(func(e *Entry) string { return e.UpstreamCluster }),
	FieldSourceAddress:        str(func(e *Entry) string { return e.SourceAddress }),
	FieldSourcePrincipal:      str(func(e *Entry) string { return e.SourcePrincipal }),
	FieldDestinationPrincipal: str(func(e *Entry) string { return e.DestinationPrincipal }),
	FieldRouteName:            str(func(e *Entry) string { return e.RouteName }),
	FieldRequestID:            str(func(e *Entry) string { return e.RequestID }),
	FieldTraceID:              str(func(e *Entry) string { return e.TraceID }),
	FieldResponseFlags: func(b []byte, e *Entry, max int) []byte {
		if e.ResponseFlags == "" {
			return append(b, `"-"`...)
		}
		return appendString(b, e.ResponseFlags, max)
	},
	FieldUserAgent:     str(func(e *Entry) string { return e.UserAgent }),
	FieldXForwardedFor: str(func(e *Entry) string { return e.XForwardedFor }),
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string ("" as null), cut to max bytes
// at a rune boundary; invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string, max int) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
