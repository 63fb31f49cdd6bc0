package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftmesh/weft/proxy/stats"
)

// Namespace prefixes every metric name.
const Namespace = "weft"

// Limits that bound the series count.
const (
	// MaxLabelLen is the longest label value kept, in bytes; longer values
	// are cut (at a UTF-8 boundary).
	MaxLabelLen = 128
	// DefaultMaxSeries is the default bound on distinct request label sets
	// (and, separately, TCP label sets).
	DefaultMaxSeries = 10000
)

// Unknown is the value of a label whose value is not known or not allowed.
const Unknown = "unknown"

// Reporter says which side of a hop reports: the client's proxy
// (source) or the server's (destination).
type Reporter string

const (
	Source      Reporter = "source"
	Destination Reporter = "destination"
)

// Protocol values of request_protocol.
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
	ProtocolTCP  = "tcp"
)

// Envoy-style response flags (response_flags). Several are joined with ",".
const (
	FlagNone               = "-"
	FlagOverflow           = "UO"   // circuit breaker overflow
	FlagUpstreamConnect    = "UF"   // upstream connect failure
	FlagRetryLimit         = "URX"  // retry limit exceeded
	FlagNoRoute            = "NR"   // no route
	FlagNoHealthy          = "UH"   // no healthy upstream
	FlagUpstreamTimeout    = "UT"   // upstream request timeout
	FlagDelayInjected      = "DI"   // fault injection: delay
	FlagFaultInjected      = "FI"   // fault injection: abort
	FlagRateLimited        = "RL"   // local rate limit
	FlagDownstreamConn     = "DC"   // downstream (client) connection terminated
	FlagNoCluster          = "NC"   // the route names a cluster the config lacks
	FlagUnauthorizedExtern = "UAEX" // external authorization denied
	FlagDenied             = "DENY" // authorization policy denied
)

// Peer describes one end of a hop: a workload of the mesh.
type Peer struct {
	Workload  string // workload name (--workload; EDS carries the same name for endpoints)
	Namespace string
	Principal string // SPIFFE ID; "" on a plaintext hop
	Version   string // version label
}

// RequestInfo is one finished HTTP or gRPC request as seen by this proxy.
// Fields left empty become "unknown" (or "-" for flags and gRPC status).
type RequestInfo struct {
	Reporter Reporter
	// Peer is the other end of the hop: on a source report, the endpoint
	// that served (its workload metadata from EDS and the principal it
	// presented); on a destination report, the client.
	Peer Peer
	// Service is the destination service host (name.namespace); one the
	// config does not know is reported as "unknown".
	Service       string
	Protocol      string // ProtocolHTTP or ProtocolGRPC
	ResponseCode  int
	GRPCStatus    string // grpc-status of the response ("" if none)
	ResponseFlags string // "" or FlagNone if none
	MTLS          bool
	Duration      time.Duration
	RequestBytes  int64
	ResponseBytes int64
}

// ConnInfo describes a TCP connection proxied as an opaque byte stream.
type ConnInfo struct {
	Reporter      Reporter
	Peer          Peer
	Service       string
	ResponseFlags string
	MTLS          bool
}

// Options configure Metrics. The zero value is usable.
type Options struct {
	// MaxSeries bounds distinct label sets (DefaultMaxSeries if zero).
	MaxSeries int
	// NoRuntime leaves out the Go runtime and process collectors (tests).
	NoRuntime bool
}

// Metrics holds the proxy's metrics. Safe for concurrent use; the data
// path methods (Request, TCPOpen and the TCPConn methods) never block on
// anything but the registry's first use of a label set.
type Metrics struct {
	self      Peer
	reg       *prometheus.Registry
	maxSeries int64

	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	reqBytes  *prometheus.HistogramVec
	respBytes *prometheus.HistogramVec

	tcpOpened *prometheus.CounterVec
	tcpClosed *prometheus.CounterVec
	tcpSent   *prometheus.CounterVec
	tcpRecv   *prometheus.CounterVec

	xdsConnected prometheus.Gauge
	configInfo   *prometheus.GaugeVec
	nacks        *prometheus.CounterVec
	certExpiry   prometheus.Gauge

	authzDenied, authzAudit *authzCounters

	services atomic.Pointer[map[string]struct{}] // nil: every service known

	reqSeries  sync.Map // requestKey → *requestObservers
	reqCount   atomic.Int64
	tcpSeries  sync.Map // tcpKey → *tcpObservers
	tcpCount   atomic.Int64
	aliases    atomic.Int64
	configMu   sync.Mutex
	configVers map[string]string // type → version currently exported
}

// requestLabels are the label names of the request metrics, in order.
var requestLabels = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal", "source_version",
	"destination_workload", "destination_workload_namespace", "destination_principal",
	"destination_service", "destination_service_name", "destination_service_namespace", "destination_version",
	"request_protocol", "response_code", "grpc_response_status", "response_flags",
	"connection_security_policy",
}

// tcpLabels are the label names of the TCP metrics, in order.
var tcpLabels = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal", "source_version",
	"destination_workload", "destination_workload_namespace", "destination_principal",
	"destination_service", "destination_service_name", "destination_service_namespace", "destination_version",
	"request_protocol", "response_flags", "connection_security_policy",
}

// DurationBuckets are the bounds of weft_request_duration_milliseconds:
// the same as the admin server's /stats/edges histogram.
var DurationBuckets = stats.Bounds

// SizeBuckets are the bounds of the request and response size histograms,
// in bytes: 1, 10, ... 10^8 (as Istio's).
var SizeBuckets = prometheus.ExponentialBuckets(1, 10, 9)

// New returns the metrics of a proxy whose own workload is self.
func New(self Peer, opts Options) *Metrics {
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = DefaultMaxSeries
	}
	m := &Metrics{self: self, reg: prometheus.NewRegistry(), maxSeries: int64(opts.MaxSeries), configVers: map[string]string{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "requests_total",
		Help: "Requests handled, by source, destination and response."}, requestLabels)
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "request_duration_milliseconds",
		Help: "Request duration in milliseconds, from the first byte received to the last byte sent.", Buckets: DurationBuckets}, requestLabels)
	m.reqBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "request_bytes",
		Help: "Request body size in bytes.", Buckets: SizeBuckets}, requestLabels)
	m.respBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "response_bytes",
		Help: "Response body size in bytes.", Buckets: SizeBuckets}, requestLabels)
	m.tcpOpened = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "tcp_connections_opened_total",
		Help: "TCP connections opened."}, tcpLabels)
	m.tcpClosed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "tcp_connections_closed_total",
		Help: "TCP connections closed."}, tcpLabels)
	m.tcpSent = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "tcp_sent_bytes_total",
		Help: "Bytes sent to the client of a TCP connection (the response direction)."}, tcpLabels)
	m.tcpRecv = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "tcp_received_bytes_total",
		Help: "Bytes received from the client of a TCP connection (the request direction)."}, tcpLabels)

	m.xdsConnected = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "proxy", Name: "xds_connected",
		Help: "1 while the ADS stream to the control plane is open."})
	m.configInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "proxy", Name: "config_info",
		Help: "The version of each xDS type the proxy runs (value 1)."}, []string{"type", "version"})
	m.nacks = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "proxy", Name: "xds_nacks_total",
		Help: "xDS responses rejected, by type."}, []string{"type"})
	m.certExpiry = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "proxy", Name: "certificate_expiry_timestamp_seconds",
		Help: "When the proxy's workload certificate expires (Unix seconds)."})

	m.authzDenied = newAuthzCounters("denied_total", "Requests (401, 403) and TCP connections denied by authorization, by the denying policy.")
	m.authzAudit = newAuthzCounters("audit_total", "Requests matched by an AUDIT policy (logged, not blocked), by policy.")

	m.reg.MustRegister(m.requests, m.duration, m.reqBytes, m.respBytes,
		m.tcpOpened, m.tcpClosed, m.tcpSent, m.tcpRecv,
		m.xdsConnected, m.configInfo, m.nacks, m.certExpiry,
		m.authzDenied.vec, m.authzAudit.vec)
	if !opts.NoRuntime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Registry returns the private registry (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text or OpenMetrics format
// (GET /metrics on the admin listener).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SetServices sets the destination service hosts (name.namespace) the
// config knows; others are reported as "unknown". Call it at every
// snapshot swap. nil (the default) accepts every service.
func (m *Metrics) SetServices(hosts []string) {
	if hosts == nil {
		m.services.Store(nil)
		return
	}
	set := make(map[string]struct{}, len(hosts))
	for _, h := range hosts {
		set[h] = struct{}{}
	}
	m.services.Store(&set)
}

// SetXDSConnected sets weft_proxy_xds_connected.
func (m *Metrics) SetXDSConnected(up bool) {
	if up {
		m.xdsConnected.Set(1)
	} else {
		m.xdsConnected.Set(0)
	}
}

// SetConfigVersion records the version of an xDS type the proxy now runs
// (weft_proxy_config_info{type,version} 1; the previous version's series
// is removed). typ is a short name such as "listener" or a type URL.
func (m *Metrics) SetConfigVersion(typ, version string) {
	typ, version = clean(typ), clean(version)
	m.configMu.Lock()
	defer m.configMu.Unlock()
	if old, ok := m.configVers[typ]; ok {
		if old == version {
			return
		}
		m.configInfo.DeleteLabelValues(typ, old)
	}
	m.configVers[typ] = version
	m.configInfo.WithLabelValues(typ, version).Set(1)
}

// NACK counts one rejected xDS response of a type.
func (m *Metrics) NACK(typ string) { m.nacks.WithLabelValues(clean(typ)).Inc() }

// SetCertificateExpiry sets weft_proxy_certificate_expiry_timestamp_seconds.
func (m *Metrics) SetCertificateExpiry(t time.Time) {
	m.certExpiry.Set(float64(t.UnixNano()) / 1e9)
}

// requestKey is the comparable form of one request label set.
type requestKey struct {
	reporter                                Reporter
	srcWorkload, srcNS, srcPrincipal, srcV  string
	dstWorkload, dstNS, dstPrincipal        string
	dstService, dstName, dstSvcNS, dstV     string
	protocol, code, grpcStatus, flags, mtls string
}

type requestObservers struct {
	requests            prometheus.Counter
	duration, req, resp prometheus.Observer
}

// Request records one finished request: one map lookup, then four
// lock-free updates.
func (m *Metrics) Request(ri RequestInfo) {
	k := requestKey{reporter: ri.Reporter, protocol: ri.Protocol, code: statusText(ri.ResponseCode),
		grpcStatus: ri.GRPCStatus, flags: ri.ResponseFlags, mtls: policy(ri.MTLS)}
	m.fillEnds(&k.srcWorkload, &k.srcNS, &k.srcPrincipal, &k.srcV, &k.dstWorkload, &k.dstNS, &k.dstPrincipal, &k.dstV, ri.Reporter, ri.Peer, ri.MTLS)
	k.dstService, k.dstName, k.dstSvcNS = m.service(ri.Service)
	v, ok := m.reqSeries.Load(k)
	if !ok {
		v = m.newRequestSeries(k)
		m.alias(&m.reqSeries, k, v)
	}
	o := v.(*requestObservers)
	o.requests.Inc()
	o.duration.Observe(float64(ri.Duration) / float64(time.Millisecond))
	o.req.Observe(float64(max(ri.RequestBytes, 0)))
	o.resp.Observe(float64(max(ri.ResponseBytes, 0)))
}

func (m *Metrics) newRequestSeries(k requestKey) any {
	k = normalizeRequestKey(k)
	if v, ok := m.reqSeries.Load(k); ok {
		return v
	}
	if m.reqCount.Load() >= m.maxSeries {
		// Fold into the overflow set: peers unknown. Its own entry is
		// cached under the folded key only, so this path is taken again
		// for the next request of the original set (cheap: one Load).
		k.srcWorkload, k.srcNS, k.srcPrincipal, k.srcV = Unknown, Unknown, Unknown, Unknown
		k.dstWorkload, k.dstNS, k.dstPrincipal, k.dstV = Unknown, Unknown, Unknown, Unknown
		if v, ok := m.reqSeries.Load(k); ok {
			return v
		}
	}
	lv := []string{string(k.reporter), k.srcWorkload, k.srcNS, k.srcPrincipal, k.srcV,
		k.dstWorkload, k.dstNS, k.dstPrincipal, k.dstService, k.dstName, k.dstSvcNS, k.dstV,
		k.protocol, k.code, k.grpcStatus, k.flags, k.mtls}
	o := &requestObservers{
		requests: m.requests.WithLabelValues(lv...),
		duration: m.duration.WithLabelValues(lv...),
		req:      m.reqBytes.WithLabelValues(lv...),
		resp:     m.respBytes.WithLabelValues(lv...),
	}
	v, loaded := m.reqSeries.LoadOrStore(k, o)
	if !loaded {
		m.reqCount.Add(1)
	}
	return v
}

// alias caches the observers under the caller's raw key too, so the next
// request with the same raw values hits the fast path. Aliases are bounded
// like series: past the bound a raw key that needs cleaning is cleaned at
// every request (slower, never unbounded).
func (m *Metrics) alias(cache *sync.Map, raw, v any) {
	if m.aliases.Load() >= m.maxSeries {
		return
	}
	if _, loaded := cache.LoadOrStore(raw, v); !loaded {
		m.aliases.Add(1)
	}
}

// normalizeRequestKey cleans the values that came from the caller.
func normalizeRequestKey(k requestKey) requestKey {
	if k.reporter != Source && k.reporter != Destination {
		k.reporter = Reporter(Unknown)
	}
	k.srcWorkload, k.srcNS, k.srcPrincipal, k.srcV = clean(k.srcWorkload), clean(k.srcNS), cleanPrincipal(k.srcPrincipal), clean(k.srcV)
	k.dstWorkload, k.dstNS, k.dstPrincipal, k.dstV = clean(k.dstWorkload), clean(k.dstNS), cleanPrincipal(k.dstPrincipal), clean(k.dstV)
	switch k.protocol {
	case ProtocolHTTP, ProtocolGRPC, ProtocolTCP:
	default:
		k.protocol = ProtocolHTTP
	}
	if k.grpcStatus != "" {
		k.grpcStatus = grpcStatusValue(k.grpcStatus)
	}
	k.flags = cleanFlags(k.flags)
	return k
}

// fillEnds sets the source and destination labels from this proxy's own
// workload and the peer, by reporter.
func (m *Metrics) fillEnds(srcW, srcNS, srcP, srcV, dstW, dstNS, dstP, dstV *string, r Reporter, peer Peer, mtls bool) {
	self := m.self
	if !mtls {
		// A plaintext hop proves nobody's identity.
		self.Principal, peer.Principal = "", ""
	}
	src, dst := self, peer
	if r == Destination {
		src, dst = peer, self
	}
	*srcW, *srcNS, *srcP, *srcV = src.Workload, src.Namespace, src.Principal, src.Version
	*dstW, *dstNS, *dstP, *dstV = dst.Workload, dst.Namespace, dst.Principal, dst.Version
}

// service returns destination_service, _name and _namespace.
func (m *Metrics) service(host string) (string, string, string) {
	if host == "" {
		return Unknown, Unknown, Unknown
	}
	if set := m.services.Load(); set != nil {
		if _, ok := (*set)[host]; !ok {
			return Unknown, Unknown, Unknown
		}
	}
	host = clean(host)
	name, ns, ok := strings.Cut(host, ".")
	if !ok || name == "" || ns == "" {
		return host, host, Unknown
	}
	if i := strings.IndexByte(ns, '.'); i > 0 {
		ns = ns[:i] // name.ns.svc.cluster.local
	}
	return host, name, ns
}

// tcpKey is the comparable form of one TCP label set.
type tcpKey struct {
	reporter                               Reporter
	srcWorkload, srcNS, srcPrincipal, srcV string
	dstWorkload, dstNS, dstPrincipal       string
	dstService, dstName, dstSvcNS, dstV    string
	flags, mtls                            string
}

type tcpObservers struct {
	opened, closed, sent, recv prometheus.Counter
}

// TCPConn is the metrics handle of one open TCP connection. Its methods
// are safe for concurrent use (one goroutine per direction).
type TCPConn struct {
	o      *tcpObservers
	closed atomic.Bool
}

// TCPOpen counts an opened connection and returns its handle.
func (m *Metrics) TCPOpen(ci ConnInfo) *TCPConn {
	k := tcpKey{reporter: ci.Reporter, flags: ci.ResponseFlags, mtls: policy(ci.MTLS)}
	m.fillEnds(&k.srcWorkload, &k.srcNS, &k.srcPrincipal, &k.srcV, &k.dstWorkload, &k.dstNS, &k.dstPrincipal, &k.dstV, ci.Reporter, ci.Peer, ci.MTLS)
	k.dstService, k.dstName, k.dstSvcNS = m.service(ci.Service)
	v, ok := m.tcpSeries.Load(k)
	if !ok {
		v = m.newTCPSeries(k)
		m.alias(&m.tcpSeries, k, v)
	}
	o := v.(*tcpObservers)
	o.opened.Inc()
	return &TCPConn{o: o}
}

func (m *Metrics) newTCPSeries(k tcpKey) any {
	if k.reporter != Source && k.reporter != Destination {
		k.reporter = Reporter(Unknown)
	}
	k.srcWorkload, k.srcNS, k.srcPrincipal, k.srcV = clean(k.srcWorkload), clean(k.srcNS), cleanPrincipal(k.srcPrincipal), clean(k.srcV)
	k.dstWorkload, k.dstNS, k.dstPrincipal, k.dstV = clean(k.dstWorkload), clean(k.dstNS), cleanPrincipal(k.dstPrincipal), clean(k.dstV)
	k.flags = cleanFlags(k.flags)
	if v, ok := m.tcpSeries.Load(k); ok {
		return v
	}
	if m.tcpCount.Load() >= m.maxSeries {
		k.srcWorkload, k.srcNS, k.srcPrincipal, k.srcV = Unknown, Unknown, Unknown, Unknown
		k.dstWorkload, k.dstNS, k.dstPrincipal, k.dstV = Unknown, Unknown, Unknown, Unknown
		if v, ok := m.tcpSeries.Load(k); ok {
			return v
		}
	}
	lv := []string{string(k.reporter), k.srcWorkload, k.srcNS, k.srcPrincipal, k.srcV,
		k.dstWorkload, k.dstNS, k.dstPrincipal, k.dstService, k.dstName, k.dstSvcNS, k.dstV,
		ProtocolTCP, k.flags, k.mtls}
	o := &tcpObservers{
		opened: m.tcpOpened.WithLabelValues(lv...),
		closed: m.tcpClosed.WithLabelValues(lv...),
		sent:   m.tcpSent.WithLabelValues(lv...),
		recv:   m.tcpRecv.WithLabelValues(lv...),
	}
	v, loaded := m.tcpSeries.LoadOrStore(k, o)
	if !loaded {
		m.tcpCount.Add(1)
	}
	return v
}

// Sent adds bytes sent to the client (call it as data flows, so long
// connections are visible before they close). Nil-safe.
func (c *TCPConn) Sent(n int) {
	if c != nil && n > 0 {
		c.o.sent.Add(float64(n))
	}
}

// Received adds bytes received from the client. Nil-safe.
func (c *TCPConn) Received(n int) {
	if c != nil && n > 0 {
		c.o.recv.Add(float64(n))
	}
}

// Close counts the connection closed; later calls do nothing. Nil-safe.
func (c *TCPConn) Close() {
	if c != nil && c.closed.CompareAndSwap(false, true) {
		c.o.closed.Inc()
	}
}

// Series returns the number of distinct request and TCP label sets in use.
func (m *Metrics) Series() (requests, tcp int) {
	return int(m.reqCount.Load()), int(m.tcpCount.Load())
}

func policy(mtls bool) string {
	if mtls {
		return "mutual_tls"
	}
	return "none"
}

// statusTexts are the response codes 100..999 as text, made once: the
// data path formats a code without allocating.
var statusTexts = func() (t [1000]string) {
	for c := 100; c < 1000; c++ {
		t[c] = strconv.Itoa(c)
	}
	return t
}()

// statusText formats a response code without allocating.
func statusText(code int) string {
	switch {
	case code == 0:
		return "0"
	case code >= 100 && code < 1000:
		return statusTexts[code]
	}
	return Unknown
}

// grpcStatusValue keeps a numeric grpc-status 0..16; anything else is
// "unknown".
func grpcStatusValue(s string) string {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 16 {
		return Unknown
	}
	return strconv.Itoa(n)
}

var knownFlags = map[string]bool{
	FlagOverflow: true, FlagUpstreamConnect: true, FlagRetryLimit: true, FlagNoRoute: true,
	FlagNoHealthy: true, FlagUpstreamTimeout: true, FlagDelayInjected: true, FlagFaultInjected: true,
	FlagRateLimited: true, FlagUnauthorizedExtern: true, FlagDenied: true, FlagDownstreamConn: true, FlagNoCluster: true,
}

// cleanFlags keeps only known flags; none is "-".
func cleanFlags(s string) string {
	if s == "" || s == FlagNone {
		return FlagNone
	}
	parts := strings.Split(s, ",")
	kept := parts[:0]
	for _, p := range parts {
		if knownFlags[p] {
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		return FlagNone
	}
	return strings.Join(kept, ",")
}

// clean makes a label value valid and bounded: "" becomes "unknown",
// invalid UTF-8 is replaced, and the value is cut to MaxLabelLen bytes.
func clean(s string) string {
	if s == "" {
		return Unknown
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > MaxLabelLen {
		cut := MaxLabelLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// cleanPrincipal is clean for SPIFFE IDs (kept whole, as Istio does).
func cleanPrincipal(s string) string { return clean(s) }
