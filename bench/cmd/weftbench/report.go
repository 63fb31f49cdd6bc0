package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// runResult is one fortio run of one path.
type runResult struct {
	Round       int       `json:"round"`
	Requests    int64     `json:"requests"`
	Errors      int64     `json:"errors"`
	RPS         float64   `json:"rps"`
	Avg         float64   `json:"avg_ms"`
	P50         float64   `json:"p50_ms"`
	P90         float64   `json:"p90_ms"`
	P99         float64   `json:"p99_ms"`
	P999        float64   `json:"p999_ms"`
	CPUSeconds  float64   `json:"cpu_seconds,omitempty"`
	CPUs1000    float64   `json:"cpu_s_per_1000_req,omitempty"`
	CPUms1000   float64   `json:"cpu_ms_per_1000_req,omitempty"`
	RSSClientMB float64   `json:"rss_client_mb,omitempty"`
	RSSServerMB float64   `json:"rss_server_mb,omitempty"`
	ReadyMS     []float64 `json:"ready_ms,omitempty"`
}

// pathResult summarises a path: medians over its runs (peak RSS: the
// largest), added latency against the direct path's medians.
type pathResult struct {
	Name         string       `json:"name"`
	Title        string       `json:"title"`
	Load         string       `json:"load"` // "fixed" or "max"
	URL          string       `json:"url"`
	Runs         []*runResult `json:"runs"`
	Requests     int64        `json:"requests"`
	Errors       int64        `json:"errors"`
	RPS          float64      `json:"rps"`
	P50          float64      `json:"p50_ms"`
	P90          float64      `json:"p90_ms"`
	P99          float64      `json:"p99_ms"`
	P999         float64      `json:"p999_ms"`
	AddedP50     *float64     `json:"added_p50_ms,omitempty"`
	AddedP90     *float64     `json:"added_p90_ms,omitempty"`
	AddedP99     *float64     `json:"added_p99_ms,omitempty"`
	AddedP999    *float64     `json:"added_p999_ms,omitempty"`
	CPUs1000     *float64     `json:"cpu_s_per_1000_req,omitempty"`
	CPUms1000    *float64     `json:"cpu_ms_per_1000_req,omitempty"`
	RSSClientMB  *float64     `json:"rss_client_mb,omitempty"`
	RSSServerMB  *float64     `json:"rss_server_mb,omitempty"`
	RSSPerProxyM *float64     `json:"rss_max_per_proxy_mb,omitempty"`
}

type ratios struct {
	Of        string   `json:"of"`
	To        string   `json:"to"`
	AddedP50  *float64 `json:"added_p50"`
	AddedP99  *float64 `json:"added_p99"`
	CPU1000   *float64 `json:"cpu_per_1000_req"`
	RSS       *float64 `json:"rss"`
	MaxRPS    *float64 `json:"max_rps,omitempty"`
	Direction string   `json:"note"`
}

type target struct {
	What   string `json:"what"`
	Goal   string `json:"goal"`
	Actual string `json:"actual"`
	Met    bool   `json:"met"`
}

type results struct {
	Date      string            `json:"date"`
	Machine   map[string]any    `json:"machine"`
	Config    map[string]any    `json:"config"`
	Commands  []string          `json:"commands"`
	Paths     []*pathResult     `json:"paths"`
	Ratios    []ratios          `json:"ratios_weft_vs_nginx"`
	Control   []*cpResult       `json:"control_plane,omitempty"`
	Startup   *startupResult    `json:"proxy_start_to_ready,omitempty"`
	CA        *caResult         `json:"ca,omitempty"`
	Targets   []target          `json:"targets"`
	Profile   map[string]string `json:"profile_top,omitempty"`
	byName    map[string]*pathResult
	readyAll  []float64
	ProfileOK bool `json:"-"`
}

type startupResult struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	Max     float64 `json:"max_ms"`
	Min     float64 `json:"min_ms"`
}

func (r *results) addRun(p path, run *runResult) {
	if r.byName == nil {
		r.byName = map[string]*pathResult{}
	}
	pr := r.byName[p.name]
	if pr == nil {
		pr = &pathResult{Name: p.name, Title: p.title, Load: "fixed", URL: p.url}
		if p.max {
			pr.Load = "max"
		}
		r.byName[p.name] = pr
		r.Paths = append(r.Paths, pr)
	}
	pr.Runs = append(pr.Runs, run)
	r.readyAll = append(r.readyAll, run.ReadyMS...)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return s[i]
}

func ptr(f float64) *float64 { return &f }

func col(runs []*runResult, f func(*runResult) float64) []float64 {
	out := make([]float64, len(runs))
	for i, r := range runs {
		out[i] = f(r)
	}
	return out
}

// finish computes the summaries, the Weft/nginx ratios and the targets.
func (r *results) finish() {
	for _, p := range r.Paths {
		for _, run := range p.Runs {
			p.Requests += run.Requests
			p.Errors += run.Errors
		}
		p.RPS = median(col(p.Runs, func(x *runResult) float64 { return x.RPS }))
		p.P50 = median(col(p.Runs, func(x *runResult) float64 { return x.P50 }))
		p.P90 = median(col(p.Runs, func(x *runResult) float64 { return x.P90 }))
		p.P99 = median(col(p.Runs, func(x *runResult) float64 { return x.P99 }))
		p.P999 = median(col(p.Runs, func(x *runResult) float64 { return x.P999 }))
		if p.Runs[0].CPUSeconds > 0 || p.Runs[0].RSSClientMB > 0 {
			p.CPUs1000 = ptr(median(col(p.Runs, func(x *runResult) float64 { return x.CPUs1000 })))
			p.CPUms1000 = ptr(*p.CPUs1000 * 1000)
			var c, s float64
			for _, run := range p.Runs {
				c, s = max(c, run.RSSClientMB), max(s, run.RSSServerMB)
			}
			p.RSSClientMB, p.RSSServerMB, p.RSSPerProxyM = ptr(c), ptr(s), ptr(max(c, s))
		}
	}
	if d := r.byName["direct"]; d != nil {
		for _, p := range r.Paths {
			if p.Load != "fixed" {
				continue
			}
			p.AddedP50, p.AddedP90 = ptr(p.P50-d.P50), ptr(p.P90-d.P90)
			p.AddedP99, p.AddedP999 = ptr(p.P99-d.P99), ptr(p.P999-d.P999)
		}
	}
	div := func(a, b *float64) *float64 {
		if a == nil || b == nil || *b == 0 {
			return nil
		}
		return ptr(*a / *b)
	}
	ng := r.byName["nginx"]
	for _, w := range []string{"weft", "weft_tcp"} {
		wp := r.byName[w]
		if wp == nil || ng == nil {
			continue
		}
		ra := ratios{Of: w, To: "nginx", AddedP50: div(wp.AddedP50, ng.AddedP50), AddedP99: div(wp.AddedP99, ng.AddedP99),
			CPU1000: div(wp.CPUs1000, ng.CPUs1000), RSS: div(wp.RSSPerProxyM, ng.RSSPerProxyM),
			Direction: "Weft / nginx: below 1 is better for latency, CPU and RSS"}
		if w == "weft" && r.byName["weft_max"] != nil && r.byName["nginx_max"] != nil {
			ra.MaxRPS = div(&r.byName["weft_max"].RPS, &r.byName["nginx_max"].RPS)
			ra.Direction += "; above 1 is better for max_rps"
		}
		r.Ratios = append(r.Ratios, ra)
	}
	if len(r.readyAll) > 0 {
		r.Startup = &startupResult{Samples: len(r.readyAll), P50: median(r.readyAll), Max: quantile(r.readyAll, 1), Min: quantile(r.readyAll, 0)}
	}
	// Targets of the issue: measured, not asserted.
	if w := r.byName["weft"]; w != nil && ng != nil && w.AddedP50 != nil && ng.AddedP50 != nil {
		r.Targets = append(r.Targets,
			target{"added p50", fmt.Sprintf("≤ nginx pair's (%.3f ms)", *ng.AddedP50), fmt.Sprintf("%.3f ms", *w.AddedP50), *w.AddedP50 <= *ng.AddedP50},
			target{"added p99", fmt.Sprintf("≤ nginx pair's (%.3f ms)", *ng.AddedP99), fmt.Sprintf("%.3f ms", *w.AddedP99), *w.AddedP99 <= *ng.AddedP99})
		if w.CPUms1000 != nil && ng.CPUms1000 != nil {
			r.Targets = append(r.Targets, target{"CPU per 1000 requests", fmt.Sprintf("≤ nginx pair's (%.0f ms)", *ng.CPUms1000),
				fmt.Sprintf("%.0f ms", *w.CPUms1000), *w.CPUms1000 <= *ng.CPUms1000})
		}
	}
	var rss float64
	for _, n := range []string{"weft", "weft_tcp", "weft_max"} {
		if p := r.byName[n]; p != nil && p.RSSPerProxyM != nil {
			rss = max(rss, *p.RSSPerProxyM)
		}
	}
	if rss > 0 {
		r.Targets = append(r.Targets, target{"RSS per proxy (peak, every Weft path)", "≤ 20 MB", fmt.Sprintf("%.1f MB", rss), rss <= 20})
	}
	for _, c := range r.Control {
		if c.Clients == 10000 {
			r.Targets = append(r.Targets, target{"route change ACKed by 10,000 proxies, p99", "≤ 2 s",
				fmt.Sprintf("%.0f ms (all: %.0f ms)", c.P99, c.Total), c.P99 <= 2000 && c.Complete})
		}
	}
}

func machine() map[string]any {
	m := map[string]any{"nproc": runtime.NumCPU(), "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu_model"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m["kernel"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("nproc").Output(); err == nil {
		m["nproc"] = strings.TrimSpace(string(out))
	}
	for name, cmd := range map[string][]string{"nginx": {"nginx", "-v"}, "haproxy": {"haproxy", "-v"}, "fortio": {"fortio", "version"}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err == nil {
			v := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
			if name == "fortio" {
				v = "fortio " + v
			}
			m[name] = v
		}
	}
	return m
}

func f3(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.3f", *p)
}

func f0(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f", *p)
}

func f1(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f", *p)
}

func f2(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f", *p)
}

// markdown renders the results as the tables kept in docs/performance.md.
func (r *results) markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("Measured %s on %v × %v (Linux %v, %v); %v; %v; %v.\n\n", r.Date, r.Machine["nproc"], r.Machine["cpu_model"],
		r.Machine["kernel"], r.Machine["go"], r.Machine["fortio"], r.Machine["nginx"], r.Machine["haproxy"])
	if len(r.Paths) > 0 {
		r.pathTable(w)
	}
	if len(r.Ratios) > 0 {
		w("\n| ratio to the nginx pair | added p50 | added p99 | CPU / 1000 req | RSS per proxy | max rps |\n|---|---|---|---|---|---|\n")
		for _, ra := range r.Ratios {
			w("| %s / nginx | %s | %s | %s | %s | %s |\n", ra.Of, f2(ra.AddedP50), f2(ra.AddedP99), f2(ra.CPU1000), f2(ra.RSS), f2(ra.MaxRPS))
		}
	}
	if len(r.Control) > 0 {
		w("\nControl plane: route change (`weft apply` of an HTTPRoute) until every simulated proxy has ACKed the new RouteConfiguration\n\n")
		w("| simulated proxies | connect + initial config | ACK p50 | ACK p99 | all ACKed | changes | control-plane RSS (peak) |\n|---|---|---|---|---|---|---|\n")
		for _, c := range r.Control {
			w("| %d | %.1f s | %.0f ms | %.0f ms | %.0f ms | %d | %.0f MB (%.0f MB) |\n", c.Clients, c.ConnectS, c.P50, c.P99, c.Total, len(c.Changes), c.RSSMB, c.HWMMB)
		}
	}
	if r.Startup != nil {
		w("\nProxy start to ready (`/ready` 200, including enrolment and the first config): p50 %.0f ms, min %.0f, max %.0f over %d starts.\n",
			r.Startup.P50, r.Startup.Min, r.Startup.Max, r.Startup.Samples)
	}
	if r.CA != nil {
		w("\nCA signings: %.0f/s on one goroutine, %.0f/s on %d (in process, `ca.Sign`); %.0f/s through the issuer (HTTPS + join token + store record, %d concurrent clients).\n",
			r.CA.SerialPerS, r.CA.ParallelPerS, r.CA.Parallelism, r.CA.IssuerPerS, r.CA.IssuerClients)
	}
	if len(r.Targets) > 0 {
		w("\n| target | goal | measured | met |\n|---|---|---|---|\n")
		for _, t := range r.Targets {
			met := "no"
			if t.Met {
				met = "yes"
			}
			w("| %s | %s | %s | %s |\n", t.What, t.Goal, t.Actual, met)
		}
	}
	return b.String()
}

func (r *results) pathTable(w func(string, ...any)) {
	w("Load: `%v`, %v runs per path (interleaved), medians; peak RSS is the largest over the runs.\n\n",
		strings.Join(r.Commands, "` and `"), r.Config["reps"])
	w("| path | p50 | p90 | p99 | p99.9 | added p50 | added p99 | added p99.9 | CPU ms / 1000 req (both proxies) | peak RSS MB client / server | rps | errors |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.Paths {
		rss := "—"
		if p.RSSClientMB != nil {
			rss = fmt.Sprintf("%.1f / %.1f", *p.RSSClientMB, *p.RSSServerMB)
		}
		w("| %s | %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %s | %s | %.0f | %d |\n", p.Title, p.P50, p.P90, p.P99, p.P999,
			f3(p.AddedP50), f3(p.AddedP99), f3(p.AddedP999), f0(p.CPUms1000), rss, p.RPS, p.Errors)
	}
	w("\nLatencies in ms. \"added\" = the path's median percentile minus the direct path's.\n")
}

const (
	docBegin = "<!-- weftbench:begin (generated by make bench; edit outside these markers) -->"
	docEnd   = "<!-- weftbench:end -->"
)

func (r *results) write(cfg *config) error {
	if err := os.MkdirAll(cfg.results, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.results, "latest.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	md := r.markdown()
	if err := os.WriteFile(filepath.Join(cfg.results, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Println()
	fmt.Println(md)
	fmt.Printf("wrote %s and %s\n", filepath.Join(cfg.results, "latest.json"), filepath.Join(cfg.results, "latest.md"))
	if cfg.doc == "" {
		return nil
	}
	doc, err := os.ReadFile(cfg.doc)
	if err != nil {
		return nil // no document to update
	}
	s := string(doc)
	i, j := strings.Index(s, docBegin), strings.Index(s, docEnd)
	if i < 0 || j < i {
		fmt.Printf("%s has no %q marker: not updated\n", cfg.doc, docBegin)
		return nil
	}
	s = s[:i+len(docBegin)] + "\n" + md + s[j:]
	if err := os.WriteFile(cfg.doc, []byte(s), 0o644); err != nil {
		return err
	}
	fmt.Printf("updated the generated section of %s\n", cfg.doc)
	return nil
}
