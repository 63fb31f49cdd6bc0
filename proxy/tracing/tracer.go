package tracing

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is the OTLP span kind.
type Kind uint8

const (
	KindServer Kind = 2 // the proxy received the request (inbound)
	KindClient Kind = 3 // the proxy sent the request (outbound)
)

// Options configure a Tracer.
type Options struct {
	// SampleRate is the share of new traces recorded, 0..1 (the mesh's
	// setting). An incoming sampled or not-sampled flag is respected; the
	// rate applies only where the caller made no decision. The decision
	// is a function of the trace id, so every proxy of a trace that
	// starts without a decision agrees.
	SampleRate float64
	// Exporter receives batches; nil records nothing (headers still
	// propagate).
	Exporter Exporter
	// Resource describes this proxy (service.name, weft.workload...).
	Resource []Attr
	// AlsoB3 adds B3 headers (single and multi) to requests that arrived
	// with W3C or no context, for B3-only apps (Zipkin instrumented).
	AlsoB3 bool
	// BatchSize spans are sent at once (default 512); a partial batch is
	// sent after BatchTimeout (default 5s).
	BatchSize    int
	BatchTimeout time.Duration
	// QueueSize bounds finished spans waiting for export (default 2048);
	// past it spans are dropped and counted.
	QueueSize int
	// Counters count this tracer's spans; nil: its own. A proxy gives
	// its successive tracers one Counters, so that the totals outlive a
	// tracer's replacement (and a retired tracer still exporting keeps
	// adding to them).
	Counters *Counters
	// Version is the proxy's version, sent as the instrumentation scope's.
	Version string
	Logger  *slog.Logger
}

// Stats are the tracer's counters.
type Stats struct {
	Started  uint64 `json:"started"`  // spans started (sampled or not)
	Sampled  uint64 `json:"sampled"`  // spans recorded
	Exported uint64 `json:"exported"` // spans sent and accepted
	Dropped  uint64 `json:"dropped"`  // spans lost to a full queue (or ended after Shutdown)
	Failed   uint64 `json:"failed"`   // spans of batches whose export failed (on every endpoint tried)
}

// Counters are span counters, shared by the tracers given them. Safe for
// concurrent use; the zero value is ready.
type Counters struct {
	started, sampled, exported, dropped, failed atomic.Uint64
}

// Stats returns the counts.
func (c *Counters) Stats() Stats {
	return Stats{Started: c.started.Load(), Sampled: c.sampled.Load(), Exported: c.exported.Load(),
		Dropped: c.dropped.Load(), Failed: c.failed.Load()}
}

// Tracer starts spans and exports them in batches. Safe for concurrent
// use; Start and Span.End never block on the exporter.
type Tracer struct {
	opts      Options
	threshold uint64 // sample when the trace id's low 8 bytes < threshold
	all       bool
	queue     chan *spanData
	stop      chan struct{}
	done      chan struct{}
	stopOnce  sync.Once
	n         *Counters
}

// New returns a Tracer and starts its export goroutine (if there is an
// exporter); Shutdown stops it.
func New(o Options) *Tracer {
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 5 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 2048
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rate := o.SampleRate
	if math.IsNaN(rate) || rate < 0 {
		rate = 0
	}
	if o.Counters == nil {
		o.Counters = &Counters{}
	}
	t := &Tracer{opts: o, stop: make(chan struct{}), done: make(chan struct{}), n: o.Counters}
	switch {
	case rate >= 1:
		t.all = true
	default:
		t.threshold = uint64(rate * (1 << 63) * 2)
	}
	if o.Exporter != nil {
		t.queue = make(chan *spanData, o.QueueSize)
		go t.run()
	} else {
		close(t.done)
	}
	return t
}

// Stats returns the counters: the tracer's own, or with Options.Counters
// those of every tracer sharing them.
func (t *Tracer) Stats() Stats { return t.n.Stats() }

// Span is one request through this proxy. Its methods are nil-safe and
// must be called from one goroutine (the request's).
type Span struct {
	t      *Tracer
	ctx    SpanContext
	parent SpanID
	remote bool
	data   *spanData // nil when not recorded
}

// Start begins the span of one request and rewrites h (the request's
// headers, forwarded to the next hop) so the next hop's parent is this
// span. h's incoming trace context, if any, is this span's parent; without
// one a new trace starts. name is the span name (e.g. "GET catalog.shop").
func (t *Tracer) Start(h http.Header, kind Kind, name string, attrs ...Attr) *Span {
	in := Extract(h)
	sp := &Span{t: t}
	if in.IsValid() {
		sp.ctx.TraceID = in.TraceID
		sp.parent = in.SpanID
		sp.remote = true
	} else {
		sp.ctx.TraceID = newTraceID()
	}
	sp.ctx.SpanID = newSpanID()
	sp.ctx.TraceState = in.TraceState
	sp.ctx.Format = in.Format
	sp.ctx.b3 = in.b3
	switch in.Decision {
	case Sampled, NotSampled:
		sp.ctx.Decision = in.Decision
	default:
		sp.ctx.Decision = NotSampled
		if t.sample(sp.ctx.TraceID) {
			sp.ctx.Decision = Sampled
		}
	}
	t.n.started.Add(1)
	Inject(h, sp.ctx, t.opts.AlsoB3)
	if sp.ctx.Decision == Sampled && t.opts.Exporter != nil {
		t.n.sampled.Add(1)
		sp.data = &spanData{traceID: sp.ctx.TraceID, spanID: sp.ctx.SpanID, parent: sp.parent, remoteParent: sp.remote,
			traceState: sp.ctx.TraceState, name: name, kind: kind, start: time.Now().UnixNano()}
		sp.data.attrs = append(make([]Attr, 0, len(attrs)+8), attrs...)
	}
	return sp
}

// sample decides for a trace without an incoming decision.
func (t *Tracer) sample(id TraceID) bool {
	if t.all {
		return true
	}
	return binary.BigEndian.Uint64(id[8:]) < t.threshold
}

// Context returns the span's context (what the next hop received).
func (s *Span) Context() SpanContext {
	if s == nil {
		return SpanContext{}
	}
	return s.ctx
}

// TraceID returns the trace id in hex, for the access log ("" if nil).
func (s *Span) TraceID() string {
	if s == nil {
		return ""
	}
	return s.ctx.TraceID.String()
}

// Recording reports whether the span will be exported; callers may skip
// computing attributes when it is not.
func (s *Span) Recording() bool { return s != nil && s.data != nil }

// SetAttributes adds attributes to a recorded span.
func (s *Span) SetAttributes(attrs ...Attr) {
	if s.Recording() {
		s.data.attrs = append(s.data.attrs, attrs...)
	}
}

// End finishes the span with the response status (0: no response, e.g.
// the client went away) and queues it for export; if the queue is full the
// span is dropped and counted. End must be called once.
func (s *Span) End(status int, attrs ...Attr) {
	if !s.Recording() {
		return
	}
	d := s.data
	s.data = nil
	d.end = time.Now().UnixNano()
	d.attrs = append(d.attrs, attrs...)
	if status > 0 {
		d.attrs = append(d.attrs, Int("http.response.status_code", int64(status)))
	}
	// OpenTelemetry HTTP semantics: 5xx is an error on both sides; 4xx only
	// on the client side; no status at all is an error.
	switch {
	case status == 0 || status >= 500:
		d.status = statusError
	case status >= 400 && d.kind == KindClient:
		d.status = statusError
	}
	s.t.enqueue(d)
}

func (t *Tracer) enqueue(d *spanData) {
	select {
	case <-t.stop:
		t.n.dropped.Add(1)
		return
	default:
	}
	select {
	case t.queue <- d:
	default:
		t.n.dropped.Add(1)
	}
}

// Attribute keys the proxy sets (OpenTelemetry semantic conventions, and
// weft.* for the mesh's own).
const (
	AttrMethod          = "http.request.method"
	AttrPath            = "url.path"
	AttrServerAddress   = "server.address"
	AttrStatusCode      = "http.response.status_code"
	AttrProtocol        = "network.protocol.version"
	AttrUserAgent       = "user_agent.original"
	AttrUpstreamCluster = "weft.upstream_cluster"
	AttrUpstreamHost    = "weft.upstream_host"
	AttrPeerPrincipal   = "weft.peer.principal" // the other end's SPIFFE ID
	AttrSelfPrincipal   = "weft.principal"      // this proxy's SPIFFE ID
	AttrResponseFlags   = "weft.response_flags"
	AttrRequestID       = "weft.request_id"
	AttrDirection       = "weft.direction"
)

// RequestAttributes returns the standard attributes of an HTTP request
// (method, path, authority, protocol, user agent), to pass to Start.
func RequestAttributes(r *http.Request) []Attr {
	out := []Attr{String(AttrMethod, r.Method), String(AttrPath, r.URL.Path), String(AttrServerAddress, r.Host)}
	if r.ProtoMajor == 2 {
		out = append(out, String(AttrProtocol, "2"))
	} else {
		out = append(out, String(AttrProtocol, "1.1"))
	}
	if ua := r.UserAgent(); ua != "" {
		out = append(out, String(AttrUserAgent, ua))
	}
	return out
}

// Shutdown exports what is queued (within ctx) and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	t.stopOnce.Do(func() { close(t.stop) })
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run batches spans and exports them, one batch at a time.
func (t *Tracer) run() {
	defer close(t.done)
	batch := make([]*spanData, 0, t.opts.BatchSize)
	timer := time.NewTimer(t.opts.BatchTimeout)
	defer timer.Stop()
	var buf []byte
	flush := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		buf = appendExportRequest(buf[:0], t.opts.Resource, "weft-proxy", t.opts.Version, batch)
		if err := t.opts.Exporter.Export(ctx, buf); err != nil {
			t.n.failed.Add(uint64(len(batch)))
			t.opts.Logger.Warn("trace export failed", "spans", len(batch), "error", err)
		} else {
			t.n.exported.Add(uint64(len(batch)))
		}
		clear(batch)
		batch = batch[:0]
	}
	for {
		select {
		case d := <-t.queue:
			batch = append(batch, d)
			if len(batch) >= t.opts.BatchSize {
				flush(context.Background())
				timer.Reset(t.opts.BatchTimeout)
			}
		case <-timer.C:
			flush(context.Background())
			timer.Reset(t.opts.BatchTimeout)
		case <-t.stop:
			ctx, cancel := context.WithTimeout(context.Background(), DefaultExportTimeout)
		drain:
			for {
				select {
				case d := <-t.queue:
					batch = append(batch, d)
					if len(batch) >= t.opts.BatchSize {
						flush(ctx)
					}
				default:
					break drain
				}
			}
			flush(ctx)
			cancel()
			return
		}
	}
}

// Ids are random (math/rand/v2's global source: lock-free, seeded by
// the runtime); they need uniqueness, not secrecy.
func newTraceID() TraceID {
	var t TraceID
	for !t.IsValid() {
		binary.BigEndian.PutUint64(t[:8], rand.Uint64())
		binary.BigEndian.PutUint64(t[8:], rand.Uint64())
	}
	return t
}

func newSpanID() SpanID {
	var s SpanID
	for !s.IsValid() {
		binary.BigEndian.PutUint64(s[:], rand.Uint64())
	}
	return s
}
