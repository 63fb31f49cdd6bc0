package e2e

// End-to-end tests of issue #5 (observability) with real processes: the
// sidecars' Prometheus metrics scraped by a real Prometheus through the
// control plane's service discovery, `weft stat` and `weft tap` from the
// sidecars' pushes, bounded metric cardinality, and traces through two
// sidecars to a real OTLP receiver configured by the MeshConfig.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/controlplane/telemetry"
)

// obsApp answers 200 with its name, and 503 on paths under /fail.
func obsApp(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail") {
			http.Error(w, name+" fails here", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return portOf(t, ln.Addr().String())
}

// obsMesh is svca (mutual TLS, STRICT by default; no retries, so what its
// app answers is what the client sees), svcb (mTLS DISABLE: the client's
// sidecar sends plaintext), one sidecar each, and a client sidecar.
type obsMesh struct {
	cp           *controlPlane
	a, b, client *sidecar
	http         *http.Client
}

func newObsMesh(t *testing.T, extraYAML string) *obsMesh {
	t.Helper()
	cp := newControlPlane(t)
	portA, portB := obsApp(t, "svca"), obsApp(t, "svcb")
	cp.apply(t, serviceYAML("svca", "app: svca", portA)+serviceYAML("svcb", "app: svcb", portB)+`apiVersion: weft.dev/v1alpha1
kind: MTLSPolicy
metadata: {name: svcb, namespace: shop}
spec:
  targetRef: {kind: Service, name: svcb}
  mode: DISABLE
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: svca, namespace: shop}
spec:
  targetRef: {kind: Service, name: svca}
  retries: {attempts: 0}
---
`+extraYAML)
	m := &obsMesh{cp: cp}
	m.a = startSidecar(t, cp, sidecarOpts{workload: "svca-1", namespace: "shop", identity: "svca", labels: []string{"app=svca", "version=v1"}, appPort: portA})
	m.b = startSidecar(t, cp, sidecarOpts{workload: "svcb-1", namespace: "shop", identity: "svcb", labels: []string{"app=svcb", "version=v1"}, appPort: portB})
	m.client = startSidecar(t, cp, sidecarOpts{workload: "client-1", namespace: "shop", identity: "client", labels: []string{"app=client"}})
	m.http = proxyClient(m.client)
	for _, host := range []string{"svca.shop", "svcb.shop"} {
		eventually(t, 20*time.Second, func() error {
			code, _, body, err := get(m.http, "http://"+host+"/warmup", "")
			if err != nil || code != 200 {
				return fmt.Errorf("%s: %d %s %v", host, code, body, err)
			}
			return nil
		})
	}
	return m
}

// waitReporting waits until the control plane lists every sidecar as a
// Prometheus target: each has pushed at least once (the first push is a
// baseline, so traffic counted after it is reported).
func (m *obsMesh) waitReporting(t *testing.T) []telemetry.TargetGroup {
	t.Helper()
	var groups []telemetry.TargetGroup
	eventually(t, 20*time.Second, func() error {
		groups = nil
		if err := getJSONURL(m.cp.api+"/v1/prometheus/targets", &groups); err != nil {
			return err
		}
		if len(groups) != 3 {
			return fmt.Errorf("%d targets, want 3: %+v", len(groups), groups)
		}
		return nil
	})
	return groups
}

// send sends n GETs to http://host+path through the client sidecar, with
// some concurrency, and fails on a transport error or an unexpected status.
func (m *obsMesh) send(t *testing.T, host, path string, n, want int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Value
	sem := make(chan struct{}, 8)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			code, _, body, err := get(m.http, fmt.Sprintf("http://%s%s%d", host, path, i), "")
			if err != nil || code != want {
				failed.Store(fmt.Sprintf("GET %s%s%d: %d %q %v (want %d)", host, path, i, code, body, err, want))
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		t.Fatal(f)
	}
}

func getJSONURL(u string, v any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s %s", u, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// series is one sample line of the Prometheus text format.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads a sidecar's /metrics and returns the samples of family.
func scrape(t *testing.T, s *sidecar, family string) []series {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	var out []series
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, family+"{") && !strings.HasPrefix(line, family+" ") {
			continue
		}
		s, err := parseSeries(line)
		if err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		out = append(out, s)
	}
	return out
}

func parseSeries(line string) (series, error) {
	s := series{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if rest[0] == '}' {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, fmt.Errorf("bad labels")
			}
			name := strings.TrimPrefix(rest[:eq], ",")
			rest = rest[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					if rest[j] == 'n' {
						val.WriteByte('\n')
						continue
					}
				}
				val.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return s, fmt.Errorf("unterminated label value")
			}
			s.labels[name] = val.String()
			rest = strings.TrimPrefix(rest[j+1:], ",")
		}
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	s.value = v
	return s, err
}

// sumBy adds up the samples matching every pair of match, by label key.
func sumBy(ss []series, key string, match map[string]string) map[string]float64 {
	out := map[string]float64{}
next:
	for _, s := range ss {
		for k, v := range match {
			if s.labels[k] != v {
				continue next
			}
		}
		out[s.labels[key]] += s.value
	}
	return out
}

// prometheus is a running /usr/bin/prometheus.
type prometheus struct {
	*process
	url string
}

func startPrometheus(t *testing.T, sdURL string) *prometheus {
	t.Helper()
	const bin = "/usr/bin/prometheus"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing under CI: scripts/test-deps.sh installs it (apt-get install prometheus)", bin)
		}
		t.Skipf("%s is not installed (run scripts/test-deps.sh, or apt-get install prometheus); skipping the Prometheus check outside CI", bin)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: weft-proxies
    scrape_interval: 1s
    scrape_timeout: 1s
    http_sd_configs:
      - url: %s
        refresh_interval: 1s
`, sdURL)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := start(t, "prometheus", bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	pr := &prometheus{process: p, url: "http://" + addr}
	waitOK(t, pr.url+"/-/ready", 30*time.Second)
	return pr
}

// query runs an instant query and returns the vector by the label key
// ("" for a single unlabelled value).
func (p *prometheus) query(q, key string) (map[string]float64, error) {
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSONURL(p.url+"/api/v1/query?query="+url.QueryEscape(q), &body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	out := map[string]float64{}
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, err
		}
		out[r.Metric[key]] = v
	}
	return out, nil
}

// TestPrometheusScrapesTheMesh: a real Prometheus finds the sidecars
// through the control plane's HTTP service discovery, and its counts are
// exactly the traffic sent (per destination service, per response code)
// with the right mutual TLS share.
func TestPrometheusScrapesTheMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh and Prometheus")
	}
	m := newObsMesh(t, "")
	groups := m.waitReporting(t)
	byWorkload := map[string]telemetry.TargetGroup{}
	for _, g := range groups {
		byWorkload[g.Labels["workload"]] = g
	}
	if g := byWorkload["svca-1"]; len(g.Targets) != 1 || g.Targets[0] != m.a.admin || g.Labels["namespace"] != "shop" ||
		g.Labels["app"] != "svca" || g.Labels["version"] != "v1" || g.Labels["identity"] != "svca" {
		t.Errorf("target of svca-1: %+v (admin %s)", g, m.a.admin)
	}
	prom := startPrometheus(t, m.cp.api+"/v1/prometheus/targets")

	source := map[string]string{"reporter": "source"}
	before := scrape(t, m.client, "weft_requests_total")
	base := sumBy(before, "destination_service", source)
	baseMTLS := sumBy(before, "connection_security_policy", source)
	base503 := sumBy(before, "destination_service", map[string]string{"reporter": "source", "response_code": "503"})

	m.send(t, "svca.shop", "/ok/", 250, 200)
	m.send(t, "svca.shop", "/fail/", 50, 503)
	m.send(t, "svcb.shop", "/ok/", 100, 200)

	wantA, wantB := base["svca.shop"]+300, base["svcb.shop"]+100
	want503 := base503["svca.shop"] + 50
	wantShare := (baseMTLS["mutual_tls"] + 300) / (baseMTLS["mutual_tls"] + baseMTLS["none"] + 400)
	// The sidecar's own /metrics first: exactly the traffic sent.
	after := scrape(t, m.client, "weft_requests_total")
	if got := sumBy(after, "destination_service", source); got["svca.shop"] != wantA || got["svcb.shop"] != wantB {
		t.Fatalf("client /metrics: svca %v svcb %v, want %v %v", got["svca.shop"], got["svcb.shop"], wantA, wantB)
	}
	// The server side counted the same (svca does not retry).
	if got := sumBy(scrape(t, m.a, "weft_requests_total"), "destination_service", map[string]string{"reporter": "destination", "source_principal": "spiffe://weft.local/ns/shop/sa/client"}); got["svca.shop"] != wantA {
		t.Errorf("svca's sidecar counted %v requests from the client, want %v (%v)", got["svca.shop"], wantA, got)
	}

	var last string
	deadline := time.Now().Add(45 * time.Second)
	for {
		got, err := prom.query(`sum by (destination_service)(weft_requests_total{reporter="source"})`, "destination_service")
		var got503, share map[string]float64
		if err == nil {
			got503, err = prom.query(`sum by (destination_service)(weft_requests_total{reporter="source",response_code="503"})`, "destination_service")
		}
		if err == nil {
			share, err = prom.query(`sum(weft_requests_total{reporter="source",connection_security_policy="mutual_tls"}) / sum(weft_requests_total{reporter="source"})`, "")
		}
		if err == nil && got["svca.shop"] == wantA && got["svcb.shop"] == wantB && got503["svca.shop"] == want503 &&
			math.Abs(share[""]-wantShare) < 1e-9 {
			t.Logf("Prometheus: %v requests, 503s %v, mTLS share %.4f", got, got503, share[""])
			break
		}
		last = fmt.Sprintf("requests %v (want svca %v, svcb %v), 503 %v (want %v), mTLS share %v (want %.4f), err %v",
			got, wantA, wantB, got503, want503, share, wantShare, err)
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never showed the traffic sent: %s", last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if wantShare <= 0.7 || wantShare >= 0.8 {
		t.Errorf("mTLS share %.3f: the test's traffic should be about 3/4 mutual TLS", wantShare)
	}
}

// statOf runs `weft stat -o json` and returns the service's traffic.
func statOf(t *testing.T, cp *controlPlane) *telemetry.Report {
	t.Helper()
	out, err := cp.weft(t, "", "stat", "-o", "json", "--window", "1m")
	if err != nil {
		t.Fatalf("weft stat: %v\n%s", err, out)
	}
	var rep telemetry.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("weft stat -o json: %v\n%s", err, out)
	}
	return &rep
}

func serviceStats(rep *telemetry.Report, svc string) telemetry.ServiceStats {
	for _, s := range rep.Services {
		if s.Service == svc {
			return s
		}
	}
	return telemetry.ServiceStats{}
}

// TestStatAndTap: `weft stat -o json` counts exactly the requests and
// failures the test sent, with plausible latencies and the mTLS share of
// each service; `weft tap` shows the requests sent while tapping.
func TestStatAndTap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh")
	}
	m := newObsMesh(t, "")
	m.waitReporting(t)
	// Let the warm-up requests reach the control plane, then count from
	// what it shows now.
	time.Sleep(3 * time.Second)
	before := statOf(t, m.cp)
	bA, bB := serviceStats(before, "svca.shop"), serviceStats(before, "svcb.shop")

	m.send(t, "svca.shop", "/ok/", 150, 200)
	m.send(t, "svca.shop", "/fail/", 30, 503)
	m.send(t, "svcb.shop", "/ok/", 60, 200)

	var a, b telemetry.ServiceStats
	var rep *telemetry.Report
	eventually(t, 15*time.Second, func() error {
		rep = statOf(t, m.cp)
		a, b = serviceStats(rep, "svca.shop"), serviceStats(rep, "svcb.shop")
		if a.Requests-bA.Requests != 180 || b.Requests-bB.Requests != 60 {
			return fmt.Errorf("svca %d, svcb %d requests since the start, want 180 and 60", a.Requests-bA.Requests, b.Requests-bB.Requests)
		}
		return nil
	})
	// One more push: nothing else arrives.
	time.Sleep(3 * time.Second)
	rep = statOf(t, m.cp)
	a, b = serviceStats(rep, "svca.shop"), serviceStats(rep, "svcb.shop")
	if a.Requests-bA.Requests != 180 || a.Success-bA.Success != 150 || b.Requests-bB.Requests != 60 || b.Success-bB.Success != 60 {
		t.Errorf("stat: svca %d requests %d ok, svcb %d requests %d ok; want 180/150 and 60/60 (before: %+v %+v)",
			a.Requests-bA.Requests, a.Success-bA.Success, b.Requests-bB.Requests, b.Success-bB.Success, bA.Traffic, bB.Traffic)
	}
	for _, s := range []telemetry.ServiceStats{a, b} {
		if s.P50MS <= 0 || s.P50MS >= 1000 || s.P99MS < s.P50MS || s.P99MS >= 5000 {
			t.Errorf("%s latency implausible: p50 %vms p99 %vms", s.Service, s.P50MS, s.P99MS)
		}
		if len(s.Versions) != 1 || s.Versions[0].Version != "v1" || s.Versions[0].Share != 1 {
			t.Errorf("%s versions: %+v", s.Service, s.Versions)
		}
	}
	if a.MTLSShare != 1 || b.MTLSShare != 0 {
		t.Errorf("mTLS share: svca %v (STRICT), svcb %v (DISABLE)", a.MTLSShare, b.MTLSShare)
	}
	found := false
	for _, e := range rep.Edges {
		if e.Source == "shop/client" && e.Destination == "svca.shop" {
			found = e.Requests == a.Requests
		}
	}
	if !found {
		t.Errorf("no edge shop/client → svca.shop with every request: %+v", rep.Edges)
	}
	// The server side: svca's workload received every attempt.
	var inbound telemetry.WorkloadStats
	for _, w := range rep.Workloads {
		if w.Workload == "shop/svca-1" {
			inbound = w
		}
	}
	if inbound.Requests < 180 || inbound.Requests-inbound.Success < 30 {
		t.Errorf("svca-1 inbound: %+v, want at least the 180 requests and 30 failures sent", inbound.Traffic)
	}

	// weft tap svca.shop: samples of the requests sent while tapping.
	ctx, cancel := context.WithCancel(context.Background())
	tap := exec.CommandContext(ctx, weftBin, "--server", m.cp.api, "tap", "svca.shop", "-o", "json")
	tap.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := tap.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	tap.Stderr = &stderr
	if err := tap.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); _ = tap.Wait() }()
	samples := make(chan telemetry.Sample, 1024)
	go func() {
		defer close(samples)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var s telemetry.Sample
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				samples <- s
			}
		}
	}()
	// Sampling starts, on each sidecar, with its first push after the tap
	// began: probe until the client's own (outbound) sample arrives — an
	// inbound sample only shows that svca's sidecar has started sampling.
	probe := 0
	deadline := time.Now().Add(20 * time.Second)
probing:
	for {
		if time.Now().After(deadline) {
			t.Fatalf("weft tap showed nothing in 20s (stderr: %s)", stderr.String())
		}
		probe++
		get(m.http, fmt.Sprintf("http://svca.shop/probe/%d", probe), "")
		select {
		case s, ok := <-samples:
			if !ok {
				t.Fatalf("weft tap ended: %s", stderr.String())
			}
			if s.Direction == "outbound" {
				break probing
			}
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Now a known batch, fewer than a sidecar samples per push.
	want := map[string]int{}
	for i := range 8 {
		path, code := fmt.Sprintf("/tapped/%d", i), 200
		if i%4 == 3 {
			path, code = fmt.Sprintf("/fail/tapped/%d", i), 503
		}
		want[path] = code
		if c, _, _, err := get(m.http, "http://svca.shop"+path, ""); err != nil || c != code {
			t.Fatalf("GET %s: %d %v", path, c, err)
		}
	}
	seen := map[string]telemetry.Sample{}
	timeout := time.After(15 * time.Second)
	for len(seen) < len(want) {
		select {
		case s, ok := <-samples:
			if !ok {
				t.Fatalf("weft tap ended: %s", stderr.String())
			}
			if _, ok := want[s.Path]; ok && s.Direction == "outbound" {
				seen[s.Path] = s
			}
		case <-timeout:
			t.Fatalf("tap showed %d of the %d requests sent while tapping: %+v", len(seen), len(want), seen)
		}
	}
	for path, s := range seen {
		if s.Method != "GET" || s.Status != want[path] || s.Destination != "svca.shop" || !strings.Contains(s.Source, "client") ||
			s.Version != "v1" || !s.MTLS || s.LatencyMS <= 0 {
			t.Errorf("tap sample of %s: %+v", path, s)
		}
	}
}

// TestMetricsCardinality: 10,000 distinct paths to a known service and
// 10,000 distinct unknown Host headers through the outbound listener do
// not add a single weft_requests_total series.
func TestMetricsCardinality(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh")
	}
	m := newObsMesh(t, "")
	// One of each kind first, so every label set exists.
	get(m.http, "http://svca.shop/path/first", "")
	get(m.http, "http://nowhere-first.example/", "")
	before := scrape(t, m.client, "weft_requests_total")

	const n = 10000
	var wg sync.WaitGroup
	var errs atomic.Int64
	work := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				target := fmt.Sprintf("http://svca.shop/path/%d?q=%d", i, i)
				if i >= n {
					target = fmt.Sprintf("http://host-%d.unknown-%d.example/x", i, i)
				}
				if _, _, _, err := get(m.http, target, ""); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	for i := range 2 * n {
		work <- i
	}
	close(work)
	wg.Wait()
	if e := errs.Load(); e > 0 {
		t.Fatalf("%d requests failed", e)
	}
	after := scrape(t, m.client, "weft_requests_total")
	total := 0.0
	for _, s := range after {
		total += s.value
	}
	if len(after) != len(before) {
		t.Errorf("weft_requests_total series went from %d to %d", len(before), len(after))
		for _, s := range after {
			t.Logf("  %v %v", s.labels, s.value)
		}
	}
	if total < 2*n {
		t.Errorf("the series count only %v requests, want at least %d", total, 2*n)
	}
	for _, s := range after {
		for k, v := range s.labels {
			if strings.Contains(v, "/path/") || strings.Contains(v, ".example") {
				t.Errorf("label %s=%q carries a path or an unknown host", k, v)
			}
		}
	}
}

// otlpReceiver is a real OTLP/gRPC trace receiver (grpc-go and the
// official generated collector service).
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []receivedSpan
	addr  string
}

type receivedSpan struct {
	service string
	span    *tracepb.Span
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		svc := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				svc = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{service: svc, span: s})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) trace(id []byte) []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedSpan
	for _, s := range r.spans {
		if string(s.span.GetTraceId()) == string(id) {
			out = append(out, s)
		}
	}
	return out
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: ln.Addr().String()}
	g := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(g, r)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return r
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			t.Fatal(err)
		}
		b[i] = byte(v)
	}
	return b
}

// TestTracingThroughTwoProxies: with a MeshConfig tracing section, a
// request carrying W3C trace context (and one carrying B3) through the
// client's sidecar and svca's sidecar makes one trace at a real OTLP/gRPC
// receiver: the client sidecar's span is the child of the caller's span,
// svca's sidecar's span the child of the client sidecar's.
func TestTracingThroughTwoProxies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh")
	}
	recv := startOTLPReceiver(t)
	m := newObsMesh(t, fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  tracing:
    sampleRate: 0
    otlp: {endpoint: "%s"}
    serviceName: e2e-shop
`, recv.addr))

	for _, tc := range []struct {
		name, traceID, parent string
		headers               map[string]string
	}{
		{"w3c", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
			map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{"b3 single", "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1",
			map[string]string{"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"}},
		{"b3 multi", "463ac35c9f6413ad48485a3953bb6124", "0020000000000001",
			map[string]string{"X-B3-TraceId": "463ac35c9f6413ad48485a3953bb6124", "X-B3-SpanId": "0020000000000001", "X-B3-Sampled": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://svca.shop/traced/"+strings.ReplaceAll(tc.name, " ", "-"), nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			// The MeshConfig reaches the sidecars by xDS: retry until a
			// trace shows up.
			tid := mustHex(t, tc.traceID)
			var spans []receivedSpan
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := m.http.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				// Batches leave every 5 s at the latest.
				wait := time.Now().Add(7 * time.Second)
				for time.Now().Before(wait) {
					if spans = recv.trace(tid); len(spans) >= 2 {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if len(spans) >= 2 || time.Now().After(deadline) {
					break
				}
			}
			var client, server *tracepb.Span
			for _, s := range spans {
				switch s.span.GetKind() {
				case tracepb.Span_SPAN_KIND_CLIENT:
					if client == nil {
						client = s.span
					}
				case tracepb.Span_SPAN_KIND_SERVER:
					if server == nil {
						server = s.span
					}
				}
				if s.service != "e2e-shop" {
					t.Errorf("span %s has service.name %q, want the MeshConfig's e2e-shop", s.span.GetName(), s.service)
				}
			}
			if client == nil || server == nil {
				t.Fatalf("trace %s: want a client and a server span, got %d spans: %+v", tc.traceID, len(spans), spans)
			}
			if string(client.GetParentSpanId()) != string(mustHex(t, tc.parent)) {
				t.Errorf("client span's parent = %x, want the caller's span %s", client.GetParentSpanId(), tc.parent)
			}
			if string(server.GetParentSpanId()) != string(client.GetSpanId()) {
				t.Errorf("server span's parent = %x, want the client span %x", server.GetParentSpanId(), client.GetSpanId())
			}
		})
	}
}
