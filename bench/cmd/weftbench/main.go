// Command weftbench measures Weft's data plane and control plane side by
// side with nginx, HAProxy and no proxy (issue #7). Run it through
// `make bench` (bench/run.sh installs the tools and builds the binaries):
// it needs root (network namespaces), fortio, nginx and haproxy.
//
// Data plane: two network namespaces joined by a veth pair; fortio and the
// app on one CPU, both proxies on the other; every path started fresh for
// each run, the paths interleaved, each repeated BENCH_REPS times. Control
// plane: N simulated proxies subscribing over ADS, timed from a route change
// to the last ACK. Also proxy start-to-ready and CA signings per second.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	weft, weftProxy, weftProxyProf, app, fortio, nginx, haproxy string
	results, doc                                                string

	duration, maxDuration, warmup, profileDuration string
	reps                                           int
	qps, conns, maxConns                           int
	loadCPU, proxyCPU                              string
	only                                           map[string]bool
	cpClients                                      []int
	cpChanges                                      int
	skipDataPlane, skipCP                          bool
	commands                                       []string
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func atoi(k string, def int) int {
	n, err := strconv.Atoi(envOr(k, strconv.Itoa(def)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "weftbench: %s: %v\n", k, err)
		os.Exit(2)
	}
	return n
}

func main() {
	cfg := &config{}
	flag.StringVar(&cfg.weft, "weft", "weft", "the weft binary")
	flag.StringVar(&cfg.weftProxy, "weft-proxy", "weft-proxy", "the weft-proxy binary")
	flag.StringVar(&cfg.weftProxyProf, "weft-proxy-prof", "", "weft-proxy with profiling (bench/cmd/weft-proxy-prof); empty: no profile run")
	flag.StringVar(&cfg.app, "app", "benchapp", "the app (bench/cmd/benchapp)")
	flag.StringVar(&cfg.fortio, "fortio", "fortio", "the fortio binary")
	flag.StringVar(&cfg.nginx, "nginx", "/usr/sbin/nginx", "the nginx binary")
	flag.StringVar(&cfg.haproxy, "haproxy", "/usr/sbin/haproxy", "the haproxy binary")
	flag.StringVar(&cfg.results, "results", "bench/results", "where latest.json and latest.md go")
	flag.StringVar(&cfg.doc, "doc", "docs/performance.md", "Markdown file whose generated section is replaced (empty: none)")
	flag.Parse()

	cfg.duration = envOr("BENCH_DURATION", "30s")
	d, err := time.ParseDuration(cfg.duration)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weftbench: BENCH_DURATION:", err)
		os.Exit(2)
	}
	cfg.maxDuration = envOr("BENCH_MAX_DURATION", (d / 2).String())
	cfg.warmup = envOr("BENCH_WARMUP", "2s")
	cfg.profileDuration = envOr("BENCH_PROFILE_DURATION", (d * 2 / 3).String())
	cfg.reps = atoi("BENCH_REPS", 3)
	cfg.qps = atoi("BENCH_QPS", 1000)
	cfg.conns = atoi("BENCH_CONNS", 16)
	cfg.maxConns = atoi("BENCH_MAX_CONNS", 32)
	cfg.loadCPU = envOr("BENCH_LOAD_CPU", "0")
	cfg.proxyCPU = envOr("BENCH_PROXY_CPU", "1")
	if v := os.Getenv("BENCH_PATHS"); v != "" {
		cfg.only = map[string]bool{}
		for _, p := range strings.Split(v, ",") {
			cfg.only[strings.TrimSpace(p)] = true
		}
	}
	for _, s := range strings.Split(envOr("BENCH_CP_CLIENTS", "1000,10000"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 {
			cfg.cpClients = append(cfg.cpClients, n)
		}
	}
	cfg.cpChanges = atoi("BENCH_CP_CHANGES", 3)
	cfg.skipDataPlane = os.Getenv("BENCH_SKIP_DATAPLANE") != ""
	cfg.skipCP = os.Getenv("BENCH_SKIP_CP") != ""

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "weftbench: needs root (it creates network namespaces)")
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	code := run(ctx, cfg)
	stopAll()
	teardownNetns()
	os.Exit(code)
}

func run(ctx context.Context, cfg *config) int {
	work, err := os.MkdirTemp("", "weftbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "weftbench:", err)
		return 1
	}
	fmt.Printf("weftbench: work dir %s (logs, configs, fortio JSON; kept)\n", work)
	res := &results{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Config: cfg.describe()}
	failed := false

	if !cfg.skipDataPlane {
		if err := dataPlane(ctx, cfg, work, res); err != nil {
			fmt.Fprintln(os.Stderr, "weftbench: data plane:", err)
			failed = true
		}
		stopAll()
		teardownNetns()
	}
	if !cfg.skipCP && ctx.Err() == nil {
		if err := controlPlaneBench(ctx, cfg, work, res); err != nil {
			fmt.Fprintln(os.Stderr, "weftbench: control plane:", err)
			failed = true
		}
		stopAll()
		teardownNetns()
	}
	res.Commands = cfg.commands
	res.finish()
	if err := res.write(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "weftbench:", err)
		return 1
	}
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

func (cfg *config) describe() map[string]any {
	return map[string]any{
		"duration": cfg.duration, "max_duration": cfg.maxDuration, "warmup": cfg.warmup, "reps": cfg.reps,
		"qps": cfg.qps, "connections": cfg.conns, "max_connections": cfg.maxConns,
		"load_and_app_cpu": cfg.loadCPU, "proxy_cpu": cfg.proxyCPU, "cp_clients": cfg.cpClients, "cp_changes": cfg.cpChanges,
	}
}

func dataPlane(ctx context.Context, cfg *config, work string, res *results) error {
	if err := setupNetns(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(work, "pki"), 0o755); err != nil {
		return err
	}
	if err := writePKI(filepath.Join(work, "pki")); err != nil {
		return err
	}
	cd, err := newNSDialer(nsClient)
	if err != nil {
		return err
	}
	sd, err := newNSDialer(nsServer)
	if err != nil {
		return err
	}
	e := &env{cfg: cfg, work: work, cliHTTP: nsClientHTTP(cd), srvHTTP: nsClientHTTP(sd), weftProxy: cfg.weftProxy}
	app, err := startIn(work, "benchapp", nsServer, cfg.loadCPU, nil, cfg.app, "-listen", "0.0.0.0:8080,0.0.0.0:8081")
	if err != nil {
		return err
	}
	defer app.stop(3 * time.Second)
	if err := waitHTTP(e.srvHTTP, "http://127.0.0.1:8080/", 10*time.Second, app); err != nil {
		return err
	}
	cp, err := e.startWeftControl()
	if cp != nil {
		defer cp.stop(5 * time.Second)
	}
	if err != nil {
		return err
	}

	fixed := load{qps: cfg.qps, conns: cfg.conns, duration: cfg.duration}
	max := load{qps: 0, conns: cfg.maxConns, duration: cfg.maxDuration}
	warm := load{qps: cfg.qps, conns: cfg.conns, duration: cfg.warmup}
	cfg.commands = append(cfg.commands, fixed.String()+" URL", max.String()+" URL")
	var paths []path
	for _, p := range e.paths() {
		if cfg.only == nil || cfg.only[p.name] {
			paths = append(paths, p)
		}
	}
	for round := 1; round <= cfg.reps; round++ {
		// Rotate the order every round so no path always follows another.
		for i := range paths {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p := paths[(i+round-1)%len(paths)]
			l := fixed
			if p.max {
				l = max
			}
			r, err := e.runOnce(p, round, l, warm)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", p.name, round, err)
			}
			res.addRun(p, r)
			fmt.Printf("  round %d %-11s p50 %6.3f ms  p99 %6.3f ms  p99.9 %6.3f ms  %8.0f rps  cpu %6.1f ms/1000  rss %4.1f/%4.1f MB  errors %d\n",
				round, p.name, r.P50, r.P99, r.P999, r.RPS, r.CPUms1000, r.RSSClientMB, r.RSSServerMB, r.Errors)
		}
	}
	if cfg.weftProxyProf != "" && (cfg.only == nil || cfg.only["weft"]) && ctx.Err() == nil {
		if err := e.profileRun(res, fixed, warm); err != nil {
			return fmt.Errorf("profile run: %w", err)
		}
	}
	return nil
}

// runOnce starts the path's proxies, warms up, then runs fortio while
// reading the proxies' CPU time before and after, and their peak RSS.
func (e *env) runOnce(p path, round int, l, warm load) (*runResult, error) {
	tag := fmt.Sprintf("%s-%d", p.name, round)
	var pr *pair
	if p.start != nil {
		var err error
		pr, err = p.start(tag)
		defer pr.stop()
		if err != nil {
			return nil, err
		}
	}
	if _, err := runFortio(e.cfg, warm, p.url, filepath.Join(e.work, tag+"-warmup.json")); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	var before int64
	if pr != nil {
		before = cpuTicks(pr.client.pid()) + cpuTicks(pr.server.pid())
	}
	fr, err := runFortio(e.cfg, l, p.url, filepath.Join(e.work, tag+".json"))
	if err != nil {
		return nil, err
	}
	r := &runResult{Round: round, Requests: fr.DurationHistogram.Count, Errors: fr.errors(), RPS: fr.ActualQPS,
		P50: fr.percentileMS(50), P90: fr.percentileMS(90), P99: fr.percentileMS(99), P999: fr.percentileMS(99.9),
		Avg: fr.DurationHistogram.Avg * 1000}
	if pr != nil {
		ticks := cpuTicks(pr.client.pid()) + cpuTicks(pr.server.pid()) - before
		r.CPUSeconds = float64(ticks) / clockTicks
		r.CPUs1000 = r.CPUSeconds / float64(r.Requests) * 1000
		r.CPUms1000 = r.CPUs1000 * 1000
		r.RSSClientMB = peakRSSMB(pr.client.pid())
		r.RSSServerMB = peakRSSMB(pr.server.pid())
		r.ReadyMS = pr.readyMS
	}
	return r, nil
}
