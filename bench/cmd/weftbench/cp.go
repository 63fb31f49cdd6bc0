package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/ca"
)

// cpResult is one control-plane run with N simulated proxies.
type cpResult struct {
	Clients int `json:"clients"`
	// ConnectS is the time until every client had its whole first config.
	ConnectS float64     `json:"connect_s"`
	Changes  []cpChange  `json:"changes"`
	P50      float64     `json:"ack_p50_ms"` // median over changes
	P99      float64     `json:"ack_p99_ms"` // median over changes
	Total    float64     `json:"ack_all_ms"` // median over changes
	Complete bool        `json:"all_acked"`  // every change reached every client
	RSSMB    float64     `json:"cp_rss_mb"`  // after the last change
	HWMMB    float64     `json:"cp_peak_rss_mb"`
	ApplyMS  float64     `json:"apply_ms"` // median time `weft apply` took
	Errors   int64       `json:"stream_errors"`
	Pushes   interface{} `json:"-"`
}

type cpChange struct {
	P50, P99, Max float64 // ms from the start of `weft apply` to each client's ACK
	Acked         int
	ApplyMS       float64
}

type caResult struct {
	SerialPerS    float64 `json:"sign_per_s_serial"`
	ParallelPerS  float64 `json:"sign_per_s_parallel"`
	Parallelism   int     `json:"parallelism"`
	IssuerPerS    float64 `json:"issuer_per_s"`
	IssuerClients int     `json:"issuer_clients"`
}

const routeTmpl = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-route, namespace: bench}
spec:
  parentRefs: [{kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v%d}}]
    backendRefs: [{name: echo, port: 80}]
  - backendRefs: [{name: echo, port: 80}]
`

func controlPlaneBench(ctx context.Context, cfg *config, work string, res *results) error {
	fmt.Println("control plane: CA signing (in process)")
	res.CA = measureCA(work)
	fmt.Printf("  ca.Sign: %.0f/s serial, %.0f/s parallel (%d)\n", res.CA.SerialPerS, res.CA.ParallelPerS, res.CA.Parallelism)
	if err := setupNetns(); err != nil {
		return err
	}
	d, err := newNSDialer(nsServer)
	if err != nil {
		return err
	}
	for i, n := range cfg.cpClients {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := cpRun(ctx, cfg, work, d, n, i == 0, res)
		if r != nil {
			res.Control = append(res.Control, r)
		}
		if err != nil {
			return fmt.Errorf("%d clients: %w", n, err)
		}
	}
	return nil
}

func cpRun(ctx context.Context, cfg *config, work string, d *nsDialer, n int, measureIssuer bool, res *results) (*cpResult, error) {
	fmt.Printf("control plane: %d simulated proxies\n", n)
	data := filepath.Join(work, fmt.Sprintf("cp-data-%d", n))
	api := "http://127.0.0.1:15080"
	cp, err := startIn(work, fmt.Sprintf("weft-control-%d", n), nsServer, "", nil, cfg.weft, "control", "--data-dir", data,
		"--xds-addr", "127.0.0.1:15010", "--issuer-addr", "127.0.0.1:15012", "--api-addr", "127.0.0.1:15080", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer cp.stop(10 * time.Second)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	if err := waitHTTP(hc, api+"/healthz", 30*time.Second, cp); err != nil {
		return nil, err
	}
	apply := func(yaml string) (time.Duration, error) {
		f := filepath.Join(work, "cp-apply.yaml")
		if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
			return 0, err
		}
		t0 := time.Now()
		out, err := exec.Command("ip", "netns", "exec", nsServer, cfg.weft, "--server", api, "apply", "-f", f).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("weft apply: %v\n%s", err, out)
		}
		return time.Since(t0), nil
	}
	if _, err := apply(weftServices + "---\n" + fmt.Sprintf(routeTmpl, 0)); err != nil {
		return nil, err
	}
	tok, _, err := createToken(hc, api, "bench", "sim")
	if err != nil {
		return nil, err
	}
	bundle, err := os.ReadFile(filepath.Join(data, "ca", "bundle.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	iss := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 64}}
	key, csr, err := newCSR("spiffe://weft.local/ns/bench/sa/sim")
	if err != nil {
		return nil, err
	}
	if measureIssuer {
		clients := 8
		rate, err := issuerRate(iss, tok, csr, clients, 3*time.Second)
		if err != nil {
			return nil, err
		}
		res.CA.IssuerPerS, res.CA.IssuerClients = rate, clients
		fmt.Printf("  issuer: %.0f certificates/s (%d clients)\n", rate, clients)
	}
	chain, err := issue(iss, tok, csr, "sim-0")
	if err != nil {
		return nil, err
	}
	cert := tls.Certificate{PrivateKey: key}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}

	r := &cpResult{Clients: n}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sims := make([]*simClient, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 128)
	t0 := time.Now()
	var lastResp atomic.Int64
	var streamErrs atomic.Int64
	for i := range sims {
		s := &simClient{id: i, lastResp: &lastResp, errs: &streamErrs}
		sims[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-cctx.Done():
				return
			}
			s.run(cctx, d, tlsCfg, sem)
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	// Wait until every client has its whole first config, and the control
	// plane has been quiet for 2 s.
	deadline := time.Now().Add(10 * time.Minute)
	for {
		ready := 0
		for _, s := range sims {
			if s.ready.Load() {
				ready++
			}
		}
		if ready == n && r.ConnectS == 0 {
			r.ConnectS = time.Since(t0).Seconds()
			fmt.Printf("  all %d ready after %.1f s\n", n, r.ConnectS)
		}
		if ready == n && time.Since(time.Unix(0, lastResp.Load())) > 2*time.Second {
			break
		}
		if time.Now().After(deadline) || cp.exited() || ctx.Err() != nil {
			return r, fmt.Errorf("only %d of %d simulated proxies got their config (stream errors %d)\n%s", ready, n, streamErrs.Load(), cp.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Complete = true
	var applies []float64
	for k := 1; k <= cfg.cpChanges; k++ {
		base := make([]string, n)
		for i, s := range sims {
			base[i] = *s.rdsVersion.Load()
		}
		start := time.Now()
		took, err := apply(fmt.Sprintf(routeTmpl, k))
		if err != nil {
			return r, err
		}
		applies = append(applies, ms(took))
		wait := time.Now().Add(2 * time.Minute)
		acked := 0
		for time.Now().Before(wait) {
			acked = 0
			for i, s := range sims {
				if *s.rdsVersion.Load() != base[i] {
					acked++
				}
			}
			if acked == n {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat := make([]float64, 0, n)
		for i, s := range sims {
			if *s.rdsVersion.Load() != base[i] {
				lat = append(lat, float64(s.rdsChangedAt.Load()-start.UnixNano())/1e6)
			}
		}
		c := cpChange{P50: quantile(lat, 0.5), P99: quantile(lat, 0.99), Max: quantile(lat, 1), Acked: acked, ApplyMS: ms(took)}
		if acked < n {
			r.Complete = false
		}
		r.Changes = append(r.Changes, c)
		fmt.Printf("  change %d: ACKed by %d/%d, p50 %.0f ms, p99 %.0f ms, all %.0f ms (weft apply %.0f ms)\n", k, acked, n, c.P50, c.P99, c.Max, c.ApplyMS)
		// Let the control plane settle before the next change.
		for time.Since(time.Unix(0, lastResp.Load())) < time.Second {
			time.Sleep(50 * time.Millisecond)
		}
	}
	r.P50 = median(colC(r.Changes, func(c cpChange) float64 { return c.P50 }))
	r.P99 = median(colC(r.Changes, func(c cpChange) float64 { return c.P99 }))
	r.Total = median(colC(r.Changes, func(c cpChange) float64 { return c.Max }))
	r.ApplyMS = median(applies)
	r.RSSMB = float64(memKB(cp.pid(), "VmRSS")) / 1024
	r.HWMMB = float64(memKB(cp.pid(), "VmHWM")) / 1024
	r.Errors = streamErrs.Load()
	fmt.Printf("  control plane RSS %.0f MB (peak %.0f MB), stream errors %d\n", r.RSSMB, r.HWMMB, r.Errors)
	return r, nil
}

func colC(cs []cpChange, f func(cpChange) float64) []float64 {
	out := make([]float64, len(cs))
	for i, c := range cs {
		out[i] = f(c)
	}
	return out
}

// simClient subscribes like weft-proxy: CDS, LDS and the ROOTCA secret at
// once, then EDS and RDS for the names those name, ACKing every response.
type simClient struct {
	id           int
	ready        atomic.Bool
	rdsVersion   atomic.Pointer[string]
	rdsChangedAt atomic.Int64
	lastResp     *atomic.Int64
	errs         *atomic.Int64
}

func (s *simClient) node() *corev3.Node {
	name := fmt.Sprintf("sim-%d", s.id)
	labels := map[string]any{"app": "sim"}
	md := map[string]any{
		xdsmeta.MetaNamespace: "bench", xdsmeta.MetaWorkload: name, xdsmeta.MetaIdentity: "sim",
		xdsmeta.MetaAddress: "127.0.0.1", xdsmeta.MetaOutbound: "127.0.0.1:15001", xdsmeta.MetaProxyVersion: "weftbench",
	}
	// The first ten are the echo Service's endpoints.
	if s.id < 10 {
		labels["app"] = "echo"
		md[xdsmeta.MetaInbound] = []any{map[string]any{xdsmeta.InboundPort: float64(15006 + s.id), xdsmeta.InboundAppPort: float64(8080), xdsmeta.InboundProtocol: "HTTP"}}
	}
	md[xdsmeta.MetaLabels] = labels
	st, err := structpb.NewStruct(md)
	if err != nil {
		panic(err)
	}
	return &corev3.Node{Id: xdsmeta.NodeID(name, "bench"), Metadata: st}
}

func (s *simClient) run(ctx context.Context, d *nsDialer, tlsCfg *tls.Config, sem chan struct{}) {
	empty := ""
	s.rdsVersion.Store(&empty)
	released := false
	release := func() {
		if !released {
			released = true
			<-sem
		}
	}
	defer release()
	conn, err := grpc.NewClient("passthrough:///127.0.0.1:15010",
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }),
		grpc.WithReadBufferSize(16<<10), grpc.WithWriteBufferSize(16<<10))
	if err != nil {
		s.errs.Add(1)
		return
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		s.errs.Add(1)
		return
	}
	names := map[string][]string{resource.ClusterType: nil, resource.ListenerType: nil, resource.SecretType: {xdsmeta.TrustBundleSecret}}
	version, nonce := map[string]string{}, map[string]string{}
	seen := map[string]bool{}
	first := true
	send := func(typ string) error {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ], VersionInfo: version[typ], ResponseNonce: nonce[typ]}
		if first {
			req.Node, first = s.node(), false
		}
		return stream.Send(req)
	}
	for _, t := range []string{resource.ClusterType, resource.ListenerType, resource.SecretType} {
		if err := send(t); err != nil {
			s.errs.Add(1)
			return
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if ctx.Err() == nil {
				s.errs.Add(1)
			}
			return
		}
		typ := resp.GetTypeUrl()
		version[typ], nonce[typ] = resp.GetVersionInfo(), resp.GetNonce()
		var sub string
		var subNames []string
		switch typ {
		case resource.ClusterType:
			sub, subNames = resource.EndpointType, edsNames(resp)
		case resource.ListenerType:
			sub, subNames = resource.RouteType, rdsNames(resp)
		}
		if err := send(typ); err != nil { // ACK
			s.errs.Add(1)
			return
		}
		now := time.Now().UnixNano()
		s.lastResp.Store(now)
		if typ == resource.RouteType && resp.GetVersionInfo() != *s.rdsVersion.Load() {
			s.rdsChangedAt.Store(now)
			v := resp.GetVersionInfo()
			s.rdsVersion.Store(&v)
		}
		if sub != "" {
			if _, subscribed := names[sub]; !subscribed || !slices.Equal(names[sub], subNames) {
				names[sub] = subNames
				if err := send(sub); err != nil {
					s.errs.Add(1)
					return
				}
			}
		}
		seen[typ] = true
		if !s.ready.Load() && len(seen) == 5 {
			s.ready.Store(true)
			release()
		}
	}
}

func edsNames(resp *discoveryv3.DiscoveryResponse) []string {
	var out []string
	for _, a := range resp.GetResources() {
		var c clusterv3.Cluster
		if proto.Unmarshal(a.GetValue(), &c) != nil || c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		name := c.GetName()
		if sn := c.GetEdsClusterConfig().GetServiceName(); sn != "" {
			name = sn
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func rdsNames(resp *discoveryv3.DiscoveryResponse) []string {
	var out []string
	for _, a := range resp.GetResources() {
		var l listenerv3.Listener
		if proto.Unmarshal(a.GetValue(), &l) != nil {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var h hcmv3.HttpConnectionManager
				if f.GetTypedConfig() == nil || proto.Unmarshal(f.GetTypedConfig().GetValue(), &h) != nil {
					continue
				}
				if n := h.GetRds().GetRouteConfigName(); n != "" && !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func newCSR(id string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	u, _ := url.Parse(id)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	return key, csr, err
}

// issue asks the issuer for a certificate with a join token.
func issue(c *http.Client, token string, csr []byte, workload string) ([][]byte, error) {
	body, _ := json.Marshal(map[string]any{"workload": workload, "csr": csr})
	req, _ := http.NewRequest(http.MethodPost, "https://127.0.0.1:15012/v1/svid", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("issuer: %s %s", resp.Status, b)
	}
	var out struct {
		Chain [][]byte `json:"chain"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	if len(out.Chain) == 0 {
		return nil, errors.New("issuer: empty chain")
	}
	return out.Chain, nil
}

// issuerRate runs clients concurrent enrolments (join token, the same CSR)
// for d and returns certificates issued per second.
func issuerRate(c *http.Client, token string, csr []byte, clients int, d time.Duration) (float64, error) {
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	end := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				if _, err := issue(c, token, csr, fmt.Sprintf("issuer-%d-%d", w, i%50)); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() == 0 {
		if e := firstErr.Load(); e != nil {
			return 0, *e
		}
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), nil
}

// measureCA signs the same CSR with the control plane's CA package, in
// process: one goroutine, then one per CPU, 3 s each.
func measureCA(work string) *caResult {
	r := &caResult{Parallelism: runtime.GOMAXPROCS(0)}
	c, err := ca.Open(ca.Options{Dir: filepath.Join(work, "ca-bench"), TrustDomain: spiffeid.RequireTrustDomainFromString("weft.local"), WorkloadTTL: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, "weftbench: ca:", err)
		return r
	}
	id := spiffeid.RequireFromString("spiffe://weft.local/ns/bench/sa/sim")
	_, csr, err := newCSR(id.String())
	if err != nil {
		return r
	}
	rate := func(workers int) float64 {
		var n atomic.Int64
		end := time.Now().Add(3 * time.Second)
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					if _, err := c.Sign(csr, id, time.Hour); err == nil {
						n.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return float64(n.Load()) / time.Since(start).Seconds()
	}
	r.SerialPerS = rate(1)
	r.ParallelPerS = rate(r.Parallelism)
	return r
}
