// Package telemetry is the control plane's zero-infrastructure traffic
// view: proxies push their cumulative edge counters and tap samples every
// 2 s (POST /v1/telemetry on the issuer port, mutual TLS); this package
// keeps a short in-memory window of 1-second buckets per edge, computed
// from the deltas of those counters (a proxy restart, seen as a new boot
// id or a counter going down, restarts the deltas from zero), and answers
//
//	GET /v1/stats?service=&window=   RPS, success rate, p50/p95/p99, mTLS share per service, version and edge
//	GET /v1/tap?service=&max=        recent requests as JSON lines, streamed
//	GET /v1/prometheus/targets       Prometheus HTTP service discovery: every proxy's admin address
//
// on the API server. Nothing is persisted: a restarted control plane
// starts with an empty window, and the counters' cumulative form means the
// next push after a lost one still carries everything.
//
// A Telemetry is safe for concurrent use. Push handling takes one mutex
// for a few microseconds per edge; tap subscribers have bounded buffers
// and a slow one loses samples (counted), never blocks a push.
package telemetry

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	wire "github.com/weftmesh/weft/api/telemetry"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PushPath is where proxies POST their pushes (on the issuer's listener).
const PushPath = wire.Path

// Defaults.
const (
	DefaultWindow     = 60 * time.Second
	DefaultMaxProxies = 10000
	// MaxEdgesPerPush and MaxSamplesPerPush bound what one push may add.
	MaxEdgesPerPush   = 2000
	MaxSamplesPerPush = 50
	// MaxSeriesPerProxy bounds the series one proxy keeps in the window.
	MaxSeriesPerProxy = 2 * MaxEdgesPerPush
	// expireAfter drops a proxy that has not pushed for this long.
	expireAfter = 10 * time.Minute
	// targetFresh is how recently a proxy must have pushed to be a
	// Prometheus target.
	targetFresh = 60 * time.Second
)

// Push, Edge, Sample and Reply are the wire types (api/telemetry),
// shared with the proxy.
type (
	Push   = wire.Push
	Edge   = wire.Edge
	Sample = wire.Sample
	Reply  = wire.Reply
)

// Workload is a registered workload, for Prometheus service discovery.
type Workload struct {
	Name      string
	Namespace string
	Labels    map[string]string
}

// Options configure a Telemetry.
type Options struct {
	// Window is how much history is kept (default 60s) in 1 s buckets.
	Window time.Duration
	// PeerIdentity returns the caller's verified namespace and identity.
	// The default, FromVerifiedCertificate, trusts the TLS handshake to
	// have verified the certificate (as the issuer listener does).
	PeerIdentity func(r *http.Request) (namespace, identity string, err error)
	// Workloads lists registered workloads; when set, Prometheus targets
	// are the listed workloads whose proxy reported an admin address
	// (labels from the registry). When nil, every proxy that pushed
	// recently is a target.
	Workloads func() []Workload
	// Authorize, when set, says whether a caller of the verified identity
	// may report for the workload namespace/name (the control plane: the
	// workload is registered with that identity). A proxy can then only
	// report for itself.
	// It returns the address the workload registered (its --address), the
	// only host besides the connection's own that a push may name for
	// its admin listener.
	Authorize  func(namespace, workload, identity string) (address string, err error)
	MaxProxies int
	Now        func() time.Time
	Logger     *slog.Logger
}

// Telemetry holds the window. See the package documentation.
type Telemetry struct {
	opts  Options
	slots int

	mu      sync.Mutex
	proxies map[string]*proxyState // namespace/workload
	subs    map[*subscription]struct{}
	refused map[string]uint64
}

type edgeID struct {
	direction, service, version string
	mtls                        bool
	peer                        string
}

type counters struct {
	requests, success uint64
	buckets           []uint64
}

type proxyState struct {
	namespace, workload, identity string
	labels                        map[string]string
	admin                         string
	boot                          string
	bounds                        []float64
	lastSeen                      time.Time
	last                          map[edgeID]counters
	series                        map[edgeID]*ring
}

// bucket is one second of one edge.
type bucket struct {
	sec               int64
	requests, success uint64
	hist              []uint64
}

type ring struct{ b []bucket }

// New returns an empty Telemetry.
func New(o Options) *Telemetry {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.PeerIdentity == nil {
		o.PeerIdentity = FromVerifiedCertificate
	}
	if o.MaxProxies <= 0 {
		o.MaxProxies = DefaultMaxProxies
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Telemetry{opts: o, slots: int(o.Window / time.Second), proxies: map[string]*proxyState{},
		subs: map[*subscription]struct{}{}, refused: map[string]uint64{}}
}

// FromVerifiedCertificate reads spiffe://TD/ns/NS/sa/SA from the client
// certificate of a TLS connection whose handshake verified it.
func FromVerifiedCertificate(r *http.Request) (string, string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", "", errors.New("a mesh client certificate is required")
	}
	return workloadOf(r.TLS.PeerCertificates[0])
}

func workloadOf(c *x509.Certificate) (string, string, error) {
	if len(c.URIs) != 1 || c.URIs[0].Scheme != "spiffe" {
		return "", "", errors.New("the client certificate has no single SPIFFE ID")
	}
	parts := strings.Split(strings.TrimPrefix(c.URIs[0].Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return "", "", fmt.Errorf("%s is not a workload identity", c.URIs[0])
	}
	return parts[1], parts[3], nil
}

// PushHandler serves POST /v1/telemetry (mount it on the issuer server).
func (t *Telemetry) PushHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "telemetry: POST only", http.StatusMethodNotAllowed)
			return
		}
		ns, id, err := t.opts.PeerIdentity(r)
		if err != nil {
			t.refuse(w, http.StatusUnauthorized, "no_identity", err.Error())
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			t.refuse(w, http.StatusRequestEntityTooLarge, "too_large", "body over 1 MiB")
			return
		}
		var p Push
		if err := json.Unmarshal(body, &p); err != nil || p.Workload == "" || p.Boot == "" {
			t.refuse(w, http.StatusBadRequest, "bad_request", "want a JSON push with workload and boot")
			return
		}
		if p.Namespace != ns {
			t.refuse(w, http.StatusForbidden, "wrong_namespace", fmt.Sprintf("a certificate of namespace %s cannot report for %s", ns, p.Namespace))
			return
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if t.opts.Authorize != nil {
			registered, err := t.opts.Authorize(p.Namespace, p.Workload, id)
			if err != nil {
				t.refuse(w, http.StatusForbidden, "wrong_workload", err.Error())
				return
			}
			p.Admin = safeAdmin(p.Admin, host, registered)
		}
		if len(p.Edges) > MaxEdgesPerPush {
			t.refuse(w, http.StatusBadRequest, "too_many_edges", fmt.Sprintf("%d edges, at most %d", len(p.Edges), MaxEdgesPerPush))
			return
		}
		if len(p.Samples) > MaxSamplesPerPush {
			p.Samples = p.Samples[:MaxSamplesPerPush]
		}
		tap, err := t.Ingest(id, host, p)
		if err != nil {
			t.refuse(w, http.StatusTooManyRequests, "too_many_proxies", err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Reply{Tap: tap})
	})
}

func (t *Telemetry) refuse(w http.ResponseWriter, code int, reason, msg string) {
	t.mu.Lock()
	t.refused[reason]++
	t.mu.Unlock()
	t.opts.Logger.Debug("telemetry push refused", "reason", reason, "detail", msg)
	http.Error(w, "telemetry: "+msg, code)
}

// Refused returns refused pushes by reason.
func (t *Telemetry) Refused() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]uint64, len(t.refused))
	for k, v := range t.refused {
		out[k] = v
	}
	return out
}

// Ingest records a push from an authenticated proxy (identity is its
// certificate's; remoteIP replaces an unspecified admin host). It reports
// whether anyone taps.
func (t *Telemetry) Ingest(identity, remoteIP string, p Push) (tap bool, err error) {
	now := t.opts.Now()
	sec := now.Unix()
	key := p.Namespace + "/" + p.Workload
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	ps := t.proxies[key]
	if ps == nil {
		if len(t.proxies) >= t.opts.MaxProxies {
			return false, fmt.Errorf("already tracking %d proxies", len(t.proxies))
		}
		ps = &proxyState{namespace: p.Namespace, workload: p.Workload, last: map[edgeID]counters{}, series: map[edgeID]*ring{}}
		t.proxies[key] = ps
	}
	restarted := ps.boot != "" && ps.boot != p.Boot
	first := ps.boot == ""
	if restarted || !sameBounds(ps.bounds, p.BoundsMS) {
		if !sameBounds(ps.bounds, p.BoundsMS) {
			ps.series = map[edgeID]*ring{} // histograms of other bounds do not add up
		}
		ps.last = map[edgeID]counters{}
	}
	ps.identity, ps.labels, ps.boot, ps.bounds, ps.lastSeen = identity, p.Labels, p.Boot, p.BoundsMS, now
	ps.admin = adminAddress(p.Admin, remoteIP)
	seen := make(map[edgeID]bool, len(p.Edges))
	for _, e := range p.Edges {
		id := edgeID{direction: e.Direction, service: e.Service, version: e.Version, mtls: e.MTLS, peer: e.Peer}
		seen[id] = true
		cur := counters{requests: e.Requests, success: e.Success, buckets: e.Buckets}
		prev, known := ps.last[id]
		ps.last[id] = cur
		if first && !known {
			// The first push of a proxy the control plane has not heard
			// from: its counters may span hours; take them as the baseline.
			continue
		}
		d := delta(prev, cur, known)
		if d.requests == 0 {
			continue
		}
		r := ps.series[id]
		if r == nil {
			if len(ps.series) >= MaxSeriesPerProxy {
				continue // bounded memory: a churning proxy loses detail, not the control plane
			}
			r = &ring{b: make([]bucket, t.slots)}
			ps.series[id] = r
		}
		r.add(sec, d)
	}
	// Forget series that left the window.
	for id, r := range ps.series {
		if !seen[id] && r.newest() <= sec-int64(t.slots) {
			delete(ps.series, id)
		}
	}
	for id := range ps.last {
		if !seen[id] {
			delete(ps.last, id)
		}
	}
	for _, s := range p.Samples {
		s.Proxy = key
		if s.Source == "" && s.Direction == "outbound" {
			s.Source = key
		}
		t.publish(s)
	}
	return len(t.subs) > 0, nil
}

// delta is cur - prev; a counter that went down (a reset the boot id did
// not show) counts cur whole.
func delta(prev, cur counters, known bool) counters {
	if !known || cur.requests < prev.requests || cur.success < prev.success || len(prev.buckets) != len(cur.buckets) {
		return cur
	}
	d := counters{requests: cur.requests - prev.requests, success: cur.success - prev.success, buckets: make([]uint64, len(cur.buckets))}
	for i := range cur.buckets {
		if cur.buckets[i] < prev.buckets[i] {
			return cur
		}
		d.buckets[i] = cur.buckets[i] - prev.buckets[i]
	}
	return d
}

func sameBounds(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// adminAddress replaces an unspecified or missing host by the proxy's
// remote address.
func adminAddress(admin, remoteIP string) string {
	if admin == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(admin)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if remoteIP == "" {
			return ""
		}
		host = remoteIP
	}
	return net.JoinHostPort(host, port)
}

// safeAdmin keeps a pushed admin address only when its host is the
// connection's own IP, the workload's registered address, unspecified, or
// loopback from a loopback connection: a proxy cannot make Prometheus
// scrape another host. Otherwise the registered address (or the
// connection's IP) is used with the pushed port.
func safeAdmin(admin, remoteIP, registered string) string {
	host, port, err := net.SplitHostPort(admin)
	if err != nil {
		return ""
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return ""
	}
	ip := net.ParseIP(host)
	remote := net.ParseIP(remoteIP)
	switch {
	case host == remoteIP, host == registered, ip != nil && ip.IsUnspecified():
		return admin
	case ip != nil && ip.IsLoopback() && remote != nil && remote.IsLoopback():
		return admin
	case registered != "":
		return net.JoinHostPort(registered, port)
	default:
		return net.JoinHostPort(remoteIP, port)
	}
}

// newest returns the second of the ring's latest bucket (0 if none).
func (r *ring) newest() int64 {
	var n int64
	for i := range r.b {
		n = max(n, r.b[i].sec)
	}
	return n
}

func (r *ring) add(sec int64, d counters) {
	b := &r.b[int(sec%int64(len(r.b)))]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.requests += d.requests
	b.success += d.success
	if len(b.hist) < len(d.buckets) {
		b.hist = append(b.hist, make([]uint64, len(d.buckets)-len(b.hist))...)
	}
	for i, v := range d.buckets {
		b.hist[i] += v
	}
}

// sum adds the buckets of the last n seconds up to now into acc.
func (r *ring) sum(now int64, n int, acc *agg) {
	for i := range r.b {
		b := &r.b[i]
		if b.requests == 0 || b.sec <= now-int64(n) || b.sec > now {
			continue
		}
		acc.requests += b.requests
		acc.success += b.success
		if len(acc.hist) < len(b.hist) {
			acc.hist = append(acc.hist, make([]uint64, len(b.hist)-len(acc.hist))...)
		}
		for j, v := range b.hist {
			acc.hist[j] += v
		}
	}
}

func (t *Telemetry) expire(now time.Time) {
	for k, ps := range t.proxies {
		if now.Sub(ps.lastSeen) > expireAfter {
			delete(t.proxies, k)
		}
	}
}

// agg accumulates traffic.
type agg struct {
	requests, success, mtls uint64
	hist                    []uint64
	bounds                  []float64
}

func (a *agg) add(b agg) {
	a.requests += b.requests
	a.success += b.success
	a.mtls += b.mtls
	if len(a.hist) < len(b.hist) {
		a.hist = append(a.hist, make([]uint64, len(b.hist)-len(a.hist))...)
	}
	for i, v := range b.hist {
		a.hist[i] += v
	}
	if a.bounds == nil {
		a.bounds = b.bounds
	}
}

// Traffic is the traffic of a service, version, edge or workload over
// the window.
type Traffic struct {
	Requests uint64 `json:"requests"`
	// Success counts the requests answered with a status below 500.
	Success     uint64  `json:"success"`
	RPS         float64 `json:"rps"`
	SuccessRate float64 `json:"success_rate"` // 0..1; 0 with no requests
	P50MS       float64 `json:"p50_ms"`
	P95MS       float64 `json:"p95_ms"`
	P99MS       float64 `json:"p99_ms"`
	MTLSShare   float64 `json:"mtls_share"` // 0..1
}

func (a agg) traffic(window time.Duration) Traffic {
	tr := Traffic{Requests: a.requests, Success: a.success, RPS: float64(a.requests) / window.Seconds()}
	if a.requests > 0 {
		tr.SuccessRate = float64(a.success) / float64(a.requests)
		tr.MTLSShare = float64(a.mtls) / float64(a.requests)
		tr.P50MS = quantile(a.hist, a.bounds, 0.50)
		tr.P95MS = quantile(a.hist, a.bounds, 0.95)
		tr.P99MS = quantile(a.hist, a.bounds, 0.99)
	}
	return tr
}

// quantile estimates the q-quantile in ms, interpolating linearly in the
// bucket (as proxy/stats.Quantile does).
func quantile(buckets []uint64, bounds []float64, q float64) float64 {
	var total uint64
	for _, b := range buckets {
		total += b
	}
	if total == 0 || len(bounds) == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, b := range buckets {
		if b == 0 {
			continue
		}
		if seen+float64(b) >= rank {
			lo := 0.0
			if i > 0 {
				lo = bounds[min(i, len(bounds))-1]
			}
			hi := lo * 2
			if i < len(bounds) {
				hi = bounds[i]
			}
			return round3(lo + (hi-lo)*(rank-seen)/float64(b))
		}
		seen += float64(b)
	}
	return bounds[len(bounds)-1]
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// Report answers GET /v1/stats.
type Report struct {
	Window    string          `json:"window"`
	Services  []ServiceStats  `json:"services"`
	Edges     []EdgeStats     `json:"edges"`
	Workloads []WorkloadStats `json:"workloads"`
}

// ServiceStats is a destination service as its clients' proxies saw it.
type ServiceStats struct {
	Service string `json:"service"`
	Traffic
	Versions []VersionStats `json:"versions"`
}

// VersionStats is one version of a service; Share is its part of the
// service's requests.
type VersionStats struct {
	Version string `json:"version"`
	Traffic
	Share float64 `json:"share"`
}

// EdgeStats is traffic from one client (its app label, or its workload
// name, and its version label) to one service, with the split over the
// versions that served it.
type EdgeStats struct {
	Source        string `json:"source"` // namespace/app
	SourceVersion string `json:"source_version,omitempty"`
	Destination   string `json:"destination"`
	Traffic
	// Versions are the destination versions that served this edge; Share
	// is each one's part of the edge's requests.
	Versions []VersionStats `json:"versions"`
}

// WorkloadStats is what one workload's proxy received (inbound, server
// side).
type WorkloadStats struct {
	Workload string `json:"workload"` // namespace/name
	Traffic
}

// Stats reports the traffic of the last window (clamped to [1s, the
// configured window]) for one service ("" for all). A service is given as
// name.namespace, or a bare name matching it in every namespace.
func (t *Telemetry) Stats(service string, window time.Duration) Report {
	n := int(window / time.Second)
	if n < 1 {
		n = 1
	}
	if n > t.slots {
		n = t.slots
	}
	window = time.Duration(n) * time.Second
	now := t.opts.Now().Unix()

	services := map[string]*agg{}
	versions := map[[2]string]*agg{}
	edges := map[[3]string]*agg{}
	edgeVersions := map[[4]string]*agg{}
	workloads := map[string]*agg{}
	get := func(m map[string]*agg, k string) *agg {
		if m[k] == nil {
			m[k] = &agg{}
		}
		return m[k]
	}
	t.mu.Lock()
	for _, ps := range t.proxies {
		src, srcVersion := ps.namespace+"/"+appOf(ps), ps.labels["version"]
		for id, r := range ps.series {
			var a agg
			r.sum(now, n, &a)
			if a.requests == 0 {
				continue
			}
			a.bounds = ps.bounds
			if id.mtls {
				a.mtls = a.requests
			}
			if id.direction == "inbound" {
				if service == "" || matchesWorkload(service, ps) {
					get(workloads, ps.namespace+"/"+ps.workload).add(a)
				}
				continue
			}
			if service != "" && !matchService(service, id.service) {
				continue
			}
			get(services, id.service).add(a)
			vk := [2]string{id.service, id.version}
			if versions[vk] == nil {
				versions[vk] = &agg{}
			}
			versions[vk].add(a)
			ek := [3]string{src, srcVersion, id.service}
			if edges[ek] == nil {
				edges[ek] = &agg{}
			}
			edges[ek].add(a)
			evk := [4]string{src, srcVersion, id.service, id.version}
			if edgeVersions[evk] == nil {
				edgeVersions[evk] = &agg{}
			}
			edgeVersions[evk].add(a)
		}
	}
	t.mu.Unlock()

	rep := Report{Window: window.String(), Services: []ServiceStats{}, Edges: []EdgeStats{}, Workloads: []WorkloadStats{}}
	for name, a := range services {
		s := ServiceStats{Service: name, Traffic: a.traffic(window), Versions: []VersionStats{}}
		for vk, va := range versions {
			if vk[0] != name {
				continue
			}
			v := VersionStats{Version: vk[1], Traffic: va.traffic(window)}
			if a.requests > 0 {
				v.Share = float64(va.requests) / float64(a.requests)
			}
			s.Versions = append(s.Versions, v)
		}
		sort.Slice(s.Versions, func(i, j int) bool { return s.Versions[i].Version < s.Versions[j].Version })
		rep.Services = append(rep.Services, s)
	}
	sort.Slice(rep.Services, func(i, j int) bool { return rep.Services[i].Service < rep.Services[j].Service })
	for ek, a := range edges {
		e := EdgeStats{Source: ek[0], SourceVersion: ek[1], Destination: ek[2], Traffic: a.traffic(window), Versions: []VersionStats{}}
		for evk, va := range edgeVersions {
			if [3]string(evk[:3]) != ek {
				continue
			}
			v := VersionStats{Version: evk[3], Traffic: va.traffic(window)}
			if a.requests > 0 {
				v.Share = float64(va.requests) / float64(a.requests)
			}
			e.Versions = append(e.Versions, v)
		}
		sort.Slice(e.Versions, func(i, j int) bool { return e.Versions[i].Version < e.Versions[j].Version })
		rep.Edges = append(rep.Edges, e)
	}
	sort.Slice(rep.Edges, func(i, j int) bool {
		a, b := rep.Edges[i], rep.Edges[j]
		if a.Destination != b.Destination {
			return a.Destination < b.Destination
		}
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.SourceVersion < b.SourceVersion
	})
	for w, a := range workloads {
		rep.Workloads = append(rep.Workloads, WorkloadStats{Workload: w, Traffic: a.traffic(window)})
	}
	sort.Slice(rep.Workloads, func(i, j int) bool { return rep.Workloads[i].Workload < rep.Workloads[j].Workload })
	return rep
}

func appOf(ps *proxyState) string {
	if a := ps.labels["app"]; a != "" {
		return a
	}
	return ps.workload
}

// matchService: "catalog.shop" matches itself; "catalog" matches
// catalog.<any namespace>.
func matchService(filter, service string) bool {
	if filter == service {
		return true
	}
	if !strings.Contains(filter, ".") {
		name, _, _ := strings.Cut(service, ".")
		return name == filter
	}
	return false
}

// matchesWorkload: a workload belongs to a service filter when its app
// label (or name) and namespace match.
func matchesWorkload(filter string, ps *proxyState) bool {
	return matchService(filter, appOf(ps)+"."+ps.namespace)
}
