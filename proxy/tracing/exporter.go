package tracing

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Exporter sends one encoded ExportTraceServiceRequest. Export may block
// up to its own timeout; it is called from the tracer's export goroutine
// only, one batch at a time.
type Exporter interface {
	Export(ctx context.Context, request []byte) error
}

// ExporterOptions configure an OTLP exporter.
type ExporterOptions struct {
	// Endpoint: for HTTP a URL (http://collector:4318/v1/traces; a URL
	// without a path gets /v1/traces); for gRPC host:port (4317).
	Endpoint string
	// TLS secures the connection; nil is plaintext (h2c for gRPC).
	TLS *tls.Config
	// Headers are added to every export (e.g. an API key).
	Headers map[string]string
	// Timeout bounds one export (default 10s).
	Timeout time.Duration
}

// DefaultExportTimeout bounds one export when Timeout is zero.
const DefaultExportTimeout = 10 * time.Second

// ExportError is a refused export: an HTTP status or a gRPC status.
type ExportError struct {
	HTTPStatus int // 0 for a gRPC status
	GRPCCode   int
	Message    string
}

func (e *ExportError) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("tracing: OTLP/HTTP export refused: %d %s", e.HTTPStatus, e.Message)
	}
	return fmt.Sprintf("tracing: OTLP/gRPC export refused: code %d: %s", e.GRPCCode, e.Message)
}

// HTTPExporter is OTLP/HTTP with binary protobuf (POST /v1/traces). Safe
// for concurrent use.
type HTTPExporter struct {
	url     string
	headers map[string]string
	client  *http.Client
}

// NewHTTPExporter returns an OTLP/HTTP exporter.
func NewHTTPExporter(o ExporterOptions) (*HTTPExporter, error) {
	u := o.Endpoint
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return nil, fmt.Errorf("tracing: OTLP/HTTP endpoint %q: want http:// or https://", u)
	}
	if rest := u[strings.Index(u, "://")+3:]; !strings.Contains(rest, "/") {
		u += "/v1/traces"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultExportTimeout
	}
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     o.TLS,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &HTTPExporter{url: u, headers: o.Headers, client: &http.Client{Transport: t, Timeout: o.Timeout}}, nil
}

// Export POSTs the request.
func (e *HTTPExporter) Export(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("tracing: OTLP/HTTP export: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return &ExportError{HTTPStatus: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
	}
	return nil
}

// exportPath is the gRPC method of the OTLP trace service.
const exportPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// GRPCExporter is OTLP/gRPC over net/http's HTTP/2 client (no grpc-go).
// Safe for concurrent use.
type GRPCExporter struct {
	url     string
	headers map[string]string
	timeout time.Duration
	client  *http.Client
}

// NewGRPCExporter returns an OTLP/gRPC exporter for host:port.
func NewGRPCExporter(o ExporterOptions) (*GRPCExporter, error) {
	if _, _, err := net.SplitHostPort(o.Endpoint); err != nil {
		return nil, fmt.Errorf("tracing: OTLP/gRPC endpoint %q: want host:port", o.Endpoint)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultExportTimeout
	}
	var protocols http.Protocols
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		DisableCompression:  true,
		Protocols:           &protocols,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 10 * time.Second},
	}
	scheme := "http"
	if o.TLS == nil {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		scheme = "https"
		protocols.SetHTTP2(true)
		cfg := o.TLS.Clone()
		cfg.NextProtos = []string{"h2"}
		t.TLSClientConfig = cfg
	}
	return &GRPCExporter{url: scheme + "://" + o.Endpoint + exportPath, headers: o.Headers, timeout: o.Timeout,
		client: &http.Client{Transport: t}}, nil
}

// Export makes one unary gRPC call.
func (e *GRPCExporter) Export(ctx context.Context, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(grpcFrame(msg)))
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	req.Header = http.Header{
		"Content-Type": {"application/grpc"},
		"Te":           {"trailers"},
		"User-Agent":   {"weft-proxy"},
		"Grpc-Timeout": {strconv.FormatInt(e.timeout.Milliseconds(), 10) + "m"},
	}
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("tracing: OTLP/gRPC export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if st := grpcStatus(resp.Header); st != nil {
			return st
		}
		return &ExportError{HTTPStatus: resp.StatusCode, Message: resp.Status}
	}
	// The answer (ExportTraceServiceResponse, possibly with
	// partial_success) is read and discarded; the status is in trailers.
	if _, err := readFrames(resp.Body, 1<<20); err != nil {
		return err
	}
	h := resp.Trailer
	if h.Get("Grpc-Status") == "" {
		h = resp.Header // trailers-only response
	}
	if h.Get("Grpc-Status") == "" {
		return errors.New("tracing: OTLP/gRPC export: no grpc-status")
	}
	if st := grpcStatus(h); st != nil {
		return st
	}
	return nil
}

// grpcStatus returns a non-OK status from h, or nil.
func grpcStatus(h http.Header) error {
	s := h.Get("Grpc-Status")
	if s == "" || s == "0" {
		return nil
	}
	code, err := strconv.Atoi(s)
	if err != nil {
		code = 2
	}
	return &ExportError{GRPCCode: code, Message: h.Get("Grpc-Message")}
}

// readFrames reads gRPC messages to EOF, refusing any larger than max.
func readFrames(r io.Reader, max uint32) (int, error) {
	var hdr [5]byte
	n := 0
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, fmt.Errorf("tracing: OTLP/gRPC export: read answer: %w", err)
		}
		size := binary.BigEndian.Uint32(hdr[1:])
		if size > max {
			return n, fmt.Errorf("tracing: OTLP/gRPC export: answer of %d bytes", size)
		}
		if _, err := io.CopyN(io.Discard, r, int64(size)); err != nil {
			return n, fmt.Errorf("tracing: OTLP/gRPC export: read answer: %w", err)
		}
		n++
	}
}

// Target is one endpoint of a collector's cluster and its exporter.
type Target struct {
	Address  string // for logs
	Exporter Exporter
}

// RoundRobinOptions configure a RoundRobin.
type RoundRobinOptions struct {
	// Targets are the cluster's endpoints, in order; at least one.
	Targets []Target
	// MaxAttempts bounds the endpoints one batch is tried on (default 3;
	// never more than the targets).
	MaxAttempts int
	Logger      *slog.Logger
	now         func() time.Time // tests
}

// Backoff bounds of an endpoint whose export failed: it is skipped for
// 1s, then 2s, 4s... up to 30s after consecutive failures, while another
// endpoint is up.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// RoundRobin is an Exporter over every endpoint of a collector's cluster:
// each batch goes to the next endpoint in turn and, when the export fails
// in a way another endpoint may not (a transport error, HTTP 429 or 5xx,
// a retryable gRPC status, as the OTLP specification lists them), to the
// next one, up to MaxAttempts endpoints. An endpoint whose export failed
// is skipped for a backoff while another is up, so a dead collector does
// not cost every other batch a connect timeout. Safe for concurrent use;
// Export blocks for the attempts it makes, each bounded by its exporter's
// timeout.
type RoundRobin struct {
	targets     []*target
	maxAttempts int
	log         *slog.Logger
	now         func() time.Time
	next        atomic.Uint64
}

type target struct {
	Target
	fails     atomic.Int64 // consecutive failures
	downUntil atomic.Int64 // unix ns; skipped before it
}

// NewRoundRobin returns a RoundRobin over o.Targets.
func NewRoundRobin(o RoundRobinOptions) (*RoundRobin, error) {
	if len(o.Targets) == 0 {
		return nil, errors.New("tracing: no collector endpoint")
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	r := &RoundRobin{maxAttempts: min(o.MaxAttempts, len(o.Targets)), log: o.Logger, now: o.now}
	for _, t := range o.Targets {
		r.targets = append(r.targets, &target{Target: t})
	}
	return r, nil
}

// Export sends the batch to the next endpoint, failing over as the type
// says. The error is the last endpoint's.
func (r *RoundRobin) Export(ctx context.Context, request []byte) error {
	n := len(r.targets)
	start := int((r.next.Add(1) - 1) % uint64(n))
	now := r.now().UnixNano()
	// The endpoints up, in turn from start, then those backing off.
	order := make([]*target, 0, n)
	for i := range n {
		if t := r.targets[(start+i)%n]; t.downUntil.Load() <= now {
			order = append(order, t)
		}
	}
	for i := range n {
		if t := r.targets[(start+i)%n]; t.downUntil.Load() > now {
			order = append(order, t)
		}
	}
	var err error
	for i, t := range order[:r.maxAttempts] {
		if i > 0 && ctx.Err() != nil {
			break
		}
		if err = t.Exporter.Export(ctx, request); err == nil {
			if t.fails.Swap(0) > 0 {
				t.downUntil.Store(0)
				r.log.Info("trace collector endpoint is back", "endpoint", t.Address)
			}
			return nil
		}
		if !Retryable(err) {
			return err
		}
		fails := t.fails.Add(1)
		backoff := min(maxBackoff, minBackoff<<min(fails-1, 5))
		t.downUntil.Store(r.now().Add(backoff).UnixNano())
		r.log.Warn("trace export to a collector endpoint failed", "endpoint", t.Address, "error", err,
			"failures", fails, "skipped_for", backoff.String())
	}
	return err
}

// Retryable reports whether an export that failed with err is worth
// trying again, on another endpoint or later: every failure but a refusal
// whose HTTP status or gRPC code the OTLP specification calls not
// retryable (a malformed request, an authentication failure...).
func Retryable(err error) bool {
	var ee *ExportError
	if !errors.As(err, &ee) {
		return true // transport: refused, reset, timed out
	}
	if ee.HTTPStatus != 0 {
		return ee.HTTPStatus == http.StatusTooManyRequests || ee.HTTPStatus >= 500
	}
	switch ee.GRPCCode {
	case 1, 4, 8, 10, 11, 14, 15: // CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS
		return true
	}
	return false
}

var _ Exporter = (*RoundRobin)(nil)
