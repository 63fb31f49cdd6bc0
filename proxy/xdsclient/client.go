package xdsclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultInitialBackoff = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	DefaultPingInterval   = 30 * time.Second
	DefaultPingTimeout    = 10 * time.Second
	DefaultMaxMessageSize = 16 << 20
	DefaultUserAgentName  = "weft-proxy"
)

// dialTimeout bounds the TCP connect and the TLS handshake of one attempt.
const dialTimeout = 10 * time.Second

// adsPath is the gRPC method the client calls.
const adsPath = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

// Options configures a Client. Zero values select the documented defaults.
// New reads Options once (and encodes Node.Metadata then); changing them or
// the metadata afterwards has no effect on the Client.
type Options struct {
	// Server is the control plane's address, host:port. Required.
	Server string

	// TLS, if non-nil, secures the connection with TLS. The client offers
	// only the ALPN protocol "h2" and refuses a server that does not select
	// it. The config is cloned once; its callbacks (GetClientCertificate,
	// VerifyPeerCertificate, VerifyConnection) run at every handshake, so a
	// certificate source that rotates needs no restart. nil means plaintext
	// HTTP/2 with prior knowledge (h2c).
	TLS *tls.Config

	// Node identifies the proxy to the control plane.
	Node Node

	// Handler receives every response of a subscribed type. Required.
	Handler Handler

	// Logger receives structured logs. nil discards them.
	Logger *slog.Logger

	// InitialBackoff is the delay before the first reconnect after a
	// stream fails (default 100ms). Each further failure doubles it, up to
	// MaxBackoff (default 5s); every delay is jittered by ±20%. The delay
	// resets once a stream has delivered a response. The same schedule
	// paces repeated NACKs of one type (see Handler).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration

	// PingInterval is how long the connection may stay silent before the
	// client sends an HTTP/2 PING (default 30s); PingTimeout is how long it
	// then waits for the PING ACK before it closes the connection as dead
	// and reconnects (default 10s). A grpc-go control plane must permit
	// this ping rate, with keepalive.EnforcementPolicy{MinTime: at most
	// PingInterval, PermitWithoutStream: true}; its default policy (5
	// minutes) answers faster pings with GOAWAY "too_many_pings".
	PingInterval time.Duration
	PingTimeout  time.Duration

	// MaxMessageSize is the largest DiscoveryResponse the client accepts,
	// in bytes (default 16 MiB). A larger one fails the stream.
	MaxMessageSize int
}

// Node is the envoy.config.core.v3.Node the client sends on the first
// request of every stream. It is plain data; see Options for when it is
// read.
type Node struct {
	ID      string
	Cluster string

	// Metadata is sent as a google.protobuf.Struct. Values may be nil,
	// bool, string, float64 (other Go integer and float types are converted
	// to float64), []any, []string, map[string]any or map[string]string,
	// nested to any depth up to 32. New rejects other types.
	Metadata map[string]any

	// UserAgentName defaults to DefaultUserAgentName.
	UserAgentName    string
	UserAgentVersion string
}

// Handler consumes the resources the control plane sends.
//
// OnResources is called from the goroutine running Client.Run, serially,
// once per DiscoveryResponse of a subscribed type, in arrival order. typeURL
// is the response's type; version its version_info; resources the values of
// its google.protobuf.Any resources, each already checked to be of type
// typeURL. In state-of-the-world xDS every response carries all resources
// of the type the client subscribed to. The slices are not reused by the
// client; the handler may keep them.
//
// Returning nil ACKs the response. Returning an error NACKs it: the client
// sends error_detail{code: INVALID_ARGUMENT, message: err.Error()} with the
// version last ACKed, and the handler should keep using the resources it
// accepted before. A control plane built on go-control-plane's
// SnapshotCache answers a NACK by sending the same snapshot again at once,
// so the client delays the second and later consecutive NACKs of a type
// (and any other request for that type meanwhile) following the backoff
// schedule, instead of trading NACKs for responses at network speed.
//
// OnResources may call Subscribe and Status; it must not call Run. While it
// runs no further response is read.
type Handler interface {
	OnResources(typeURL, version string, resources [][]byte) error
}

// HandlerFunc adapts a function to the Handler interface. The function is
// called as Handler.OnResources is: serially, from Run's goroutine.
type HandlerFunc func(typeURL, version string, resources [][]byte) error

// OnResources calls f.
func (f HandlerFunc) OnResources(typeURL, version string, resources [][]byte) error {
	return f(typeURL, version, resources)
}

var _ Handler = HandlerFunc(nil)

// Status is a snapshot of a Client's state, for health checks and debug
// endpoints. It is a copy that shares nothing with the Client, so it may be
// kept and read from any goroutine.
type Status struct {
	// Connected is true while an ADS stream is open.
	Connected bool
	// LastConnected is when the current or most recent stream was opened.
	LastConnected time.Time
	// Reconnects counts the streams opened after the first one.
	Reconnects int
	// LastError is the error that ended the most recent stream, or nil.
	LastError error
	// Types holds one entry per subscribed type URL.
	Types map[string]TypeStatus
}

// TypeStatus is the state of one subscribed type, a copy like Status.
type TypeStatus struct {
	// Names are the subscribed resource names, sorted; nil is a wildcard,
	// empty (non-nil) is none.
	Names []string
	// Version is the version_info of the last ACKed response.
	Version string
	// NackError is the error sent with the most recent NACK; a later ACK
	// clears it.
	NackError string
	// Acks and Nacks count the responses ACKed and NACKed.
	Acks, Nacks int
}

// Client is a state-of-the-world ADS client
// (envoy.service.discovery.v3.AggregatedDiscoveryService) that speaks gRPC
// over net/http's HTTP/2 client.
//
// A Client is safe for concurrent use. Run may be running at most once at a
// time. Subscribe and Status never block on the network and may be called
// from any goroutine, including from inside Handler.OnResources, and
// before, during or after Run.
type Client struct {
	opts      Options
	log       *slog.Logger
	node      []byte // encoded Node
	transport *http.Transport
	scheme    string
	url       string
	userAgent string
	running   atomic.Bool

	mu            sync.Mutex
	types         map[string]*typeState
	order         []string     // type URLs in subscription order
	stream        *streamState // nil while no stream is open
	lastConnected time.Time
	streams       int // streams opened so far
	lastErr       error
}

// typeState is the client's state for one subscribed type. Guarded by
// Client.mu.
type typeState struct {
	names   []string // sorted, deduplicated; nil = wildcard, empty = none
	version string   // last ACKed version
	nackErr string   // error of the latest response if NACKed
	acks    int
	nacks   int

	nacksInRow int       // consecutive NACKs, for pacing
	nonce      string    // latest response nonce on the current stream
	requested  bool      // a request was sent on the current stream
	notBefore  time.Time // the next request is held until then
}

// streamState is what the receive side and Subscribe share with the sender
// of one stream.
type streamState struct {
	wake chan struct{} // capacity 1: "pending changed"

	// Guarded by Client.mu.
	pending  []string // type URLs that need a request, in order
	sentNode bool
}

// enqueue marks typeURL as needing a request and wakes the sender. The
// caller holds Client.mu.
func (s *streamState) enqueue(typeURL string) {
	if !slices.Contains(s.pending, typeURL) {
		s.pending = append(s.pending, typeURL)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// New returns a Client for opts. It validates opts and encodes the node
// once; it does not connect (Run does).
func New(opts Options) (*Client, error) {
	host, port, err := net.SplitHostPort(opts.Server)
	if err != nil {
		return nil, fmt.Errorf("xdsclient: server address %q: %w", opts.Server, err)
	}
	if host == "" || port == "" {
		return nil, fmt.Errorf("xdsclient: server address %q needs a host and a port", opts.Server)
	}
	if opts.Handler == nil {
		return nil, errors.New("xdsclient: Options.Handler is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&opts.InitialBackoff, DefaultInitialBackoff)
	setDefault(&opts.MaxBackoff, DefaultMaxBackoff)
	setDefault(&opts.PingInterval, DefaultPingInterval)
	setDefault(&opts.PingTimeout, DefaultPingTimeout)
	setDefault(&opts.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&opts.Node.UserAgentName, DefaultUserAgentName)
	if opts.MaxBackoff < opts.InitialBackoff {
		opts.MaxBackoff = opts.InitialBackoff
	}

	node, err := encodeNode(opts.Node)
	if err != nil {
		return nil, fmt.Errorf("xdsclient: node: %w", err)
	}
	scheme := "http"
	if opts.TLS != nil {
		scheme = "https"
	}
	userAgent := opts.Node.UserAgentName
	if opts.Node.UserAgentVersion != "" {
		userAgent += "/" + opts.Node.UserAgentVersion
	}
	return &Client{
		opts:      opts,
		log:       opts.Logger,
		node:      node,
		transport: newTransport(opts),
		scheme:    scheme,
		url:       scheme + "://" + opts.Server + adsPath,
		userAgent: userAgent + " weft-xdsclient",
		types:     make(map[string]*typeState),
	}, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// newTransport builds the HTTP/2-only transport Run opens its connections
// with (one per stream, through Transport.NewClientConn).
func newTransport(opts Options) *http.Transport {
	var protocols http.Protocols
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: dialTimeout,
		DisableCompression:  true,
		Protocols:           &protocols,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: opts.PingInterval,
			PingTimeout:     opts.PingTimeout,
		},
	}
	if opts.TLS == nil {
		protocols.SetUnencryptedHTTP2(true)
		return t
	}
	protocols.SetHTTP2(true)
	cfg := opts.TLS.Clone()
	cfg.NextProtos = []string{"h2"}
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol != "h2" {
			return fmt.Errorf("xdsclient: server did not negotiate HTTP/2 (ALPN %q)", cs.NegotiatedProtocol)
		}
		if verify != nil {
			return verify(cs)
		}
		return nil
	}
	t.TLSClientConfig = cfg
	return t
}

// Run connects to the control plane, opens the ADS stream, and serves it
// until ctx is done, reconnecting with backoff whenever the stream or the
// connection fails. On every new stream it re-sends a request for each
// subscribed type with the version last ACKed and the subscribed names.
//
// Run blocks. It returns nil once ctx is done, after the stream is closed
// and the last Handler call has returned; it returns an error at once if
// the Client is already running. Failures of single streams are logged and
// reported by Status, not returned.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("xdsclient: Run called while already running")
	}
	defer c.running.Store(false)

	bo := backoff{initial: c.opts.InitialBackoff, max: c.opts.MaxBackoff}
	for {
		gotResponse, err := c.runStream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		if gotResponse {
			bo.reset()
		}
		delay := bo.next()
		c.log.Warn("ADS stream failed", "server", c.opts.Server, "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Subscribe sets the resource names the client asks for of type typeURL:
// nil subscribes to every resource of the type (wildcard); a non-nil empty
// slice to none (say, EDS once CDS has no EDS cluster left); otherwise
// exactly the given names (order and duplicates do not matter). If the set
// differs from the current one and a stream is open, the client sends a new
// request. An empty typeURL is ignored.
//
// Wildcard is sent as an empty resource_names list (the "legacy wildcard"
// that go-control-plane's SnapshotCache understands; it does not handle the
// explicit "*" name). "None" sends nothing for a type not yet requested on
// the stream, and otherwise an empty list, which after explicit names means
// "none" in the xDS protocol. State-of-the-world xDS cannot express a
// change from wildcard to none on one stream: the control plane keeps
// treating the type as wildcard until the next reconnect.
//
// Subscribe does not block and may be called from inside OnResources.
func (c *Client) Subscribe(typeURL string, names []string) {
	if typeURL == "" {
		c.log.Error("Subscribe called with an empty type URL")
		return
	}
	var set []string // nil: wildcard
	if names != nil {
		set = slices.Compact(slices.Sorted(slices.Values(names)))
		if set == nil {
			set = []string{} // none
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	ts, ok := c.types[typeURL]
	if ok && (ts.names == nil) == (set == nil) && slices.Equal(ts.names, set) {
		return
	}
	if !ok {
		ts = &typeState{}
		c.types[typeURL] = ts
		c.order = append(c.order, typeURL)
	}
	ts.names = set
	if c.stream != nil {
		c.stream.enqueue(typeURL)
	}
}

// Status returns a snapshot of the client's state. It does not block.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{
		Connected:     c.stream != nil,
		LastConnected: c.lastConnected,
		Reconnects:    max(c.streams-1, 0),
		LastError:     c.lastErr,
		Types:         make(map[string]TypeStatus, len(c.types)),
	}
	for typeURL, ts := range c.types {
		s.Types[typeURL] = TypeStatus{
			Names:     slices.Clone(ts.names),
			Version:   ts.version,
			NackError: ts.nackErr,
			Acks:      ts.acks,
			Nacks:     ts.nacks,
		}
	}
	return s
}
