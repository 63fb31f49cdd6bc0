package demo

import (
	"bytes"
	"context"
	"embed"
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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/controlplane/telemetry"
)

//go:embed config/*.yaml
var configFS embed.FS

// Config returns the demo's resources as YAML documents, in apply order.
func Config() ([]byte, error) {
	var out []byte
	for _, name := range []string{"config/services.yaml", "config/catalog-canary.yaml", "config/reviews-retries.yaml"} {
		b, err := configFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		out = append(out, []byte("\n---\n")...)
	}
	return out, nil
}

// Options configure a demo run.
type Options struct {
	// Weft and Proxy are the binaries to run.
	Weft, Proxy string
	// For stops the demo after this long (0: until ctx ends).
	For time.Duration
	// Interval between traffic tables.
	Interval time.Duration
	// RPS is the load generator's request rate.
	RPS int
	// Apply applies the demo's configuration to the control plane API.
	Apply func(ctx context.Context, api string) error
	Out   io.Writer
}

// Addresses of the demo's hosts.
const (
	ipControl = "127.0.66.1"
	namespace = "shop"
)

type member struct {
	workload string
	service  string
	version  string
	ip       string
	calls    []string
	work     time.Duration
	// errorRate is the share of requests the app fails with 503.
	errorRate float64
}

var members = []member{
	{workload: "loadgen", service: "loadgen", ip: "127.0.66.2", calls: []string{"web.shop"}},
	{workload: "web-1", service: "web", version: "v1", ip: "127.0.66.3", calls: []string{"catalog.shop"}, work: time.Millisecond},
	{workload: "catalog-v1-1", service: "catalog", version: "v1", ip: "127.0.66.4", calls: []string{"reviews.shop"}, work: time.Millisecond},
	{workload: "catalog-v2-1", service: "catalog", version: "v2", ip: "127.0.66.5", calls: []string{"reviews.shop"}, work: 3 * time.Millisecond},
	// reviews fails 10 % of its requests: the mesh's retries hide them.
	{workload: "reviews-1", service: "reviews", version: "v1", ip: "127.0.66.6", work: 500 * time.Microsecond, errorRate: 0.10},
}

// Summary is the outcome of a demo run.
type Summary struct {
	Requests uint64 `json:"requests"`
	Success  uint64 `json:"success"`
	Edges    []Row  `json:"edges"`
	// Retries is what the flaky reviews app answered, as its own sidecar
	// saw it (before the callers' retries).
	Retries AppFailures `json:"retries"`
}

// AppFailures is what one app answered to its sidecar.
type AppFailures struct {
	Service  string `json:"service"`
	Requests uint64 `json:"requests"`
	Failed   uint64 `json:"failed"`
}

// Row is one line of the traffic table.
type Row struct {
	Source   string  `json:"source"`
	Dest     string  `json:"destination"`
	Version  string  `json:"version"`
	Requests uint64  `json:"requests"`
	Success  float64 `json:"successRate"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50ms"`
	P99      float64 `json:"p99ms"`
	Share    float64 `json:"share"`
	MTLS     bool    `json:"mtls"`
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// Run runs the demo until ctx ends or o.For passes, then stops every
// process it started and returns the summary. It fails if no traffic
// flowed.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.RPS <= 0 {
		o.RPS = 20
	}
	out := o.Out
	if err := checkPorts(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "weft-demo-")
	if err != nil {
		return nil, err
	}
	api := ipControl + ":15080"
	xdsAddr := ipControl + ":15010"
	issuerAddr := ipControl + ":15012"
	fmt.Fprintf(out, "Weft demo: a service mesh on this machine (namespace %s)\n", namespace)
	fmt.Fprintf(out, "  control plane  API http://%s   xDS %s\n", api, xdsAddr)
	fmt.Fprintf(out, "  use the CLI    export WEFT_SERVER=http://%s; weft get services; weft get workloads\n", api)
	fmt.Fprintf(out, "  logs           %s/*.log\n\n", dir)

	var procs []*proc
	defer func() { stopAll(procs, out) }()
	start := func(name string, args ...string) (*proc, error) {
		p, err := startProc(dir, name, args)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		return p, nil
	}

	t0 := time.Now()
	fmt.Fprintf(out, "Starting the control plane ... ")
	if _, err := start("control", o.Weft, "control", "--data-dir", filepath.Join(dir, "data"),
		"--xds-addr", xdsAddr, "--api-addr", api, "--issuer-addr", issuerAddr, "--registration-grace", "5s"); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+api+"/healthz", 20*time.Second); err != nil {
		return nil, fmt.Errorf("control plane did not start (see %s/control.log): %w", dir, err)
	}
	fmt.Fprintf(out, "ready (%s)\n", since(t0))
	if err := o.Apply(ctx, "http://"+api); err != nil {
		return nil, fmt.Errorf("applying the demo config: %w", err)
	}

	for _, m := range members {
		join, err := joinArgs(ctx, "http://"+api, namespace, m.service)
		if err != nil {
			return nil, fmt.Errorf("join token for %s: %w", m.workload, err)
		}
		args := []string{"run",
			"--control-plane", xdsAddr,
			"--workload", m.workload, "--namespace", namespace,
			"--label", "app=" + m.service,
			"--address", m.ip, "--admin", m.ip + ":15000",
			"--outbound", m.ip + ":15001",
			"--log-format", "json",
			"--issuer", issuerAddr,
		}
		args = append(args, join...)
		if m.version != "" {
			args = append(args, "--label", "version="+m.version)
		}
		for i, c := range m.calls {
			args = append(args, "--upstream", fmt.Sprintf("%s=%s:%d", c, m.ip, 9001+i))
		}
		if m.workload != "loadgen" {
			args = append(args, "--inbound", "15006:8080", "--app-address", m.ip, "--",
				o.Weft, "demo-app", "--service", m.service, "--version", m.version,
				"--listen", m.ip+":8080", "--work", m.work.String(), "--error-rate", fmt.Sprint(m.errorRate))
			for _, c := range m.calls {
				args = append(args, "--call", c)
			}
		}
		fmt.Fprintf(out, "Starting %-13s %s %s with its sidecar on %s\n", m.workload, m.service, m.version, m.ip)
		if _, err := start(m.workload, append([]string{o.Weft}, args...)...); err != nil {
			return nil, err
		}
	}
	for _, m := range members {
		if err := waitHTTP(ctx, "http://"+m.ip+":15000/ready", 30*time.Second); err != nil {
			return nil, fmt.Errorf("sidecar of %s not ready (see %s/%s.log): %w", m.workload, dir, m.workload, err)
		}
	}
	fmt.Fprintf(out, "All %d sidecars ready (%s).\n", len(members), since(t0))

	entry := "http://" + members[0].ip + ":9001/"
	if err := warmUp(ctx, entry, 20*time.Second); err != nil {
		return nil, fmt.Errorf("no request got through the mesh (see the logs in %s): %w", dir, err)
	}
	fmt.Fprintf(out, "Traffic flows. Sending %d req/s to web.shop through the load generator's sidecar; Ctrl-C stops.\n", o.RPS)

	// The table comes from the control plane's aggregation of the
	// sidecars' pushes (GET /v1/stats): wait until every sidecar reports,
	// so the first push (a baseline) is behind us.
	stats := &statsClient{base: "http://" + api, c: &http.Client{Timeout: 5 * time.Second}}
	if err := stats.waitReporting(ctx, len(members), 20*time.Second); err != nil {
		return nil, fmt.Errorf("the sidecars do not report to the control plane (see the logs in %s): %w", dir, err)
	}
	fmt.Fprintf(out, "Every sidecar reports its traffic to the control plane (weft stat, weft top, weft tap).\n")

	runCtx := ctx
	if o.For > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.For)
		defer cancel()
	}
	lg := startLoad(runCtx, entry, o.RPS)
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	begin := time.Now()
	window := o.Interval.Round(time.Second)
	if window < time.Second {
		window = time.Second
	}
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-tick.C:
			fmt.Fprintf(out, "\n[%s] traffic in the last %s, as the sidecars reported it to the control plane\n", since(begin), window)
			rep, err := stats.get(ctx, window)
			if err != nil {
				fmt.Fprintf(out, "  (cannot read the control plane's stats: %v)\n", err)
				continue
			}
			printTable(out, rows(rep, window))
		}
	}
	lg.wait()
	ran := time.Since(begin)
	// The sidecars push every 2 s (±20 %): wait for the last pushes.
	select {
	case <-ctx.Done():
	case <-time.After(pushSettle):
	}
	rep, err := stats.get(context.WithoutCancel(ctx), ran+pushSettle+time.Second)
	if err != nil {
		return nil, fmt.Errorf("reading the control plane's stats: %w", err)
	}
	counted := ran
	if w, err := time.ParseDuration(rep.Window); err == nil && w < ran {
		counted = w
	}
	sum := &Summary{Edges: rows(rep, counted)}
	sum.Requests, sum.Success = lg.sent.Load(), lg.ok.Load()
	fmt.Fprintf(out, "\nSummary after %s: the load generator sent %d requests, %d succeeded (%.1f%%)\n",
		ran.Round(100*time.Millisecond), sum.Requests, sum.Success, pct(sum.Success, sum.Requests))
	if counted < ran {
		fmt.Fprintf(out, "Traffic of the last %s (the control plane keeps %s):\n", rep.Window, rep.Window)
	}
	printTable(out, sum.Edges)
	printSplit(out, sum.Edges)
	sum.Retries = retrySummary(rep)
	printRetries(out, sum.Retries, sum.Edges)
	mtls := 0
	for _, r := range sum.Edges {
		if r.MTLS {
			mtls++
		}
	}
	if mtls == len(sum.Edges) && mtls > 0 {
		fmt.Fprintf(out, "Every hop was mutual TLS (SPIFFE identities from the mesh CA, trust domain weft.local).\n")
	} else {
		fmt.Fprintf(out, "%d of %d edges were mutual TLS.\n", mtls, len(sum.Edges))
	}
	if sum.Success == 0 {
		return sum, errors.New("no request succeeded through the mesh")
	}
	return sum, nil
}

// joinArgs creates a join token for one identity and returns the sidecar
// flags that use it.
func joinArgs(ctx context.Context, api, ns, identity string) ([]string, error) {
	body, _ := json.Marshal(map[string]string{"namespace": ns, "identity": identity, "ttl": "1h"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/tokens", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var tr struct {
		Token string `json:"token"`
		CAPin string `json:"caPin"`
	}
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		return nil, err
	}
	return []string{"--token", tr.Token, "--ca-pin", tr.CAPin, "--identity", identity}, nil
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// checkPorts fails early when a demo address is taken.
func checkPorts() error {
	addrs := []string{ipControl + ":15010", ipControl + ":15012", ipControl + ":15080"}
	for _, m := range members {
		addrs = append(addrs, m.ip+":15000", m.ip+":15001", m.ip+":9001")
		if m.workload != "loadgen" {
			addrs = append(addrs, m.ip+":15006", m.ip+":8080")
		}
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("address %s is taken (is another demo running?): %w", a, err)
		}
		ln.Close()
	}
	return nil
}

func startProc(dir, name string, argv []string) (*proc, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig is tied to the starting thread: keep it alive.
		runtime.LockOSThread()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		// Own process group: Ctrl-C reaches only the demo, which stops
		// the processes in order; they die with it if it is killed.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", name, err)
			close(p.done)
			logf.Close()
			return
		}
		p.cmd = cmd
		started <- nil
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// stopAll stops the processes in reverse start order: SIGTERM to each
// process group, then SIGKILL for any that do not exit in time.
func stopAll(procs []*proc, out io.Writer) {
	if len(procs) == 0 {
		return
	}
	fmt.Fprintf(out, "\nStopping %d processes ... ", len(procs))
	for i := len(procs) - 1; i >= 0; i-- {
		_ = syscall.Kill(-procs[i].cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(10 * time.Second)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	fmt.Fprintln(out, "done.")
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out after %s: %v", timeout, last)
}

func warmUp(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return last
}

type load struct {
	sent, ok atomic.Uint64
	wg       sync.WaitGroup
}

func (l *load) wait() { l.wg.Wait() }

// startLoad sends rps requests per second (open loop, bounded concurrency)
// until ctx ends.
func startLoad(ctx context.Context, url string, rps int) *load {
	l := &load{}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	sem := make(chan struct{}, 64)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(time.Second / time.Duration(rps))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // saturated: skip rather than queue
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer func() { <-sem }()
				l.sent.Add(1)
				resp, err := c.Get(url)
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 500 {
					l.ok.Add(1)
				}
			}()
		}
	}()
	return l
}

// pushSettle is how long the sidecars take to push what they counted
// (every 2 s, ±20 %).
const pushSettle = 3 * time.Second

// statsClient reads the control plane's traffic view.
type statsClient struct {
	base string
	c    *http.Client
}

// get reads GET /v1/stats over the last window.
func (s *statsClient) get(ctx context.Context, window time.Duration) (*telemetry.Report, error) {
	var rep telemetry.Report
	if err := s.getJSON(ctx, "/v1/stats?window="+url.QueryEscape(window.String()), &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

func (s *statsClient) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitReporting waits until n sidecars have pushed (they are then
// Prometheus targets of the control plane).
func (s *statsClient) waitReporting(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	got := 0
	for time.Now().Before(deadline) {
		var groups []telemetry.TargetGroup
		if err := s.getJSON(ctx, "/v1/prometheus/targets", &groups); err == nil {
			if got = len(groups); got >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%d of %d sidecars reported in %s", got, n, timeout)
}

// retrySummary is what the flaky app answered, as its own sidecar
// reported it (inbound, before the callers' retries).
func retrySummary(rep *telemetry.Report) AppFailures {
	var f AppFailures
	for _, m := range members {
		if m.errorRate == 0 {
			continue
		}
		f.Service = m.service + "." + namespace
		for _, w := range rep.Workloads {
			if w.Workload == namespace+"/"+m.workload {
				f.Requests += w.Requests
				f.Failed += w.Requests - w.Success
			}
		}
	}
	return f
}

// printRetries shows the app's failures next to what its callers saw.
func printRetries(w io.Writer, f AppFailures, rows []Row) {
	if f.Requests == 0 {
		return
	}
	var n, ok float64
	for _, r := range rows {
		if r.Dest == f.Service {
			n += float64(r.Requests)
			ok += float64(r.Requests) * r.Success / 100
		}
	}
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "Retries on %s: its app failed %d of the %d attempts it got (%.1f%%); its callers saw %.1f%% success\n"+
		"  (TrafficPolicy reviews: up to 3 retries on 5xx, within the default retry budget of 20%% + 10/s).\n",
		f.Service, f.Failed, f.Requests, pct(f.Failed, f.Requests), 100*ok/n)
}

// sourceName names an edge's client as the demo's members do: the
// workload without its instance suffix (catalog-v1), else the app.
func sourceName(e telemetry.EdgeStats) string {
	_, app, _ := strings.Cut(e.Source, "/")
	for _, m := range members {
		if m.service == app && m.version == e.SourceVersion {
			return strings.TrimSuffix(m.workload, "-1")
		}
	}
	return app
}

// rows turns the control plane's edges into table rows: one per client,
// destination and version that served; RPS over window.
func rows(rep *telemetry.Report, window time.Duration) []Row {
	var out []Row
	for _, e := range rep.Edges {
		for _, v := range e.Versions {
			if v.Requests == 0 {
				continue
			}
			out = append(out, Row{
				Source: sourceName(e), Dest: e.Destination, Version: v.Version, Requests: v.Requests,
				Success: 100 * float64(v.Success) / float64(v.Requests),
				RPS:     float64(v.Requests) / window.Seconds(),
				P50:     v.P50MS,
				P99:     v.P99MS,
				Share:   100 * v.Share,
				MTLS:    v.MTLSShare == 1,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Source != b.Source {
			return order(a.Source) < order(b.Source)
		}
		if a.Dest != b.Dest {
			return a.Dest < b.Dest
		}
		return a.Version < b.Version
	})
	return out
}

func order(src string) int {
	for i, m := range members {
		if strings.TrimSuffix(m.workload, "-1") == src {
			return i
		}
	}
	return len(members)
}

func printTable(w io.Writer, rows []Row) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "  (no traffic)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SOURCE\tDESTINATION\tVERSION\tREQUESTS\tSUCCESS\tRPS\tP50\tP99\tSHARE\tMTLS")
	for _, r := range rows {
		mtls := "no"
		if r.MTLS {
			mtls = "yes"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%.1f%%\t%.1f\t%.1fms\t%.1fms\t%.0f%%\t%s\n",
			r.Source, r.Dest, dash(r.Version), r.Requests, r.Success, r.RPS, r.P50, r.P99, r.Share, mtls)
	}
	tw.Flush()
}

func printSplit(w io.Writer, rows []Row) {
	var parts []string
	for _, r := range rows {
		if r.Dest == "catalog.shop" {
			parts = append(parts, fmt.Sprintf("%s %.1f%%", r.Version, r.Share))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "Canary split of catalog.shop (route: v1 90 / v2 10): %s\n", strings.Join(parts, " / "))
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
