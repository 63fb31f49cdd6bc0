package telemetry

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// subscription is one tap client.
type subscription struct {
	service string
	ch      chan Sample
	dropped atomic.Uint64
}

// DefaultTapBuffer is a tap subscription's buffer when none is given.
const DefaultTapBuffer = 256

// Subscribe returns a channel of the samples whose source or destination
// matches service ("" for all), and a cancel func that ends the
// subscription and closes the channel. The channel holds buffer samples;
// when it is full new samples are dropped for this subscriber and counted
// (the returned dropped func reads the count).
func (t *Telemetry) Subscribe(service string, buffer int) (samples <-chan Sample, cancel func(), dropped func() uint64) {
	if buffer <= 0 {
		buffer = DefaultTapBuffer
	}
	s := &subscription{service: service, ch: make(chan Sample, buffer)}
	t.mu.Lock()
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	var done atomic.Bool
	cancel = func() {
		if done.Swap(true) {
			return
		}
		t.mu.Lock()
		delete(t.subs, s)
		t.mu.Unlock()
		close(s.ch)
	}
	return s.ch, cancel, s.dropped.Load
}

// publish hands a sample to every matching subscriber; t.mu is held.
func (t *Telemetry) publish(smp Sample) {
	for s := range t.subs {
		if s.service != "" && !matchService(s.service, smp.Destination) && !matchService(s.service, sourceService(smp.Source)) {
			continue
		}
		select {
		case s.ch <- smp:
		default:
			s.dropped.Add(1)
		}
	}
}

// sourceService turns "ns/app" into "app.ns" for matching.
func sourceService(src string) string {
	if ns, app, ok := strings.Cut(src, "/"); ok {
		return app + "." + ns
	}
	return src
}

// APIHandler serves GET /v1/stats, GET /v1/tap and GET
// /v1/prometheus/targets (mount it on the API server for those paths).
func (t *Telemetry) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stats", t.serveStats)
	mux.HandleFunc("GET /v1/tap", t.serveTap)
	mux.HandleFunc("GET /v1/prometheus/targets", t.serveTargets)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type errorBody struct {
	Error string `json:"error"`
}

func (t *Telemetry) serveStats(w http.ResponseWriter, r *http.Request) {
	window := t.opts.Window
	if s := r.URL.Query().Get("window"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "window: want a duration such as 30s or 1m"})
			return
		}
		window = d
	}
	writeJSON(w, http.StatusOK, t.Stats(r.URL.Query().Get("service"), window))
}

// serveTap streams matching samples as JSON lines until the client goes
// away or max samples were sent.
func (t *Telemetry) serveTap(w http.ResponseWriter, r *http.Request) {
	max := 0
	if s := r.URL.Query().Get("max"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "max: want a number"})
			return
		}
		max = n
	}
	ch, cancel, _ := t.Subscribe(r.URL.Query().Get("service"), DefaultTapBuffer)
	defer cancel()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	sent := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case s, ok := <-ch:
			if !ok {
				return
			}
			if enc.Encode(s) != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			sent++
			if max > 0 && sent >= max {
				return
			}
		}
	}
}

// TargetGroup is one entry of Prometheus HTTP service discovery.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

var labelName = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// Targets returns one target group per proxy that pushed in the last
// minute with an admin address.
func (t *Telemetry) Targets() []TargetGroup {
	now := t.opts.Now()
	type known struct {
		admin, identity string
		labels          map[string]string
	}
	byKey := map[string]known{}
	t.mu.Lock()
	for k, ps := range t.proxies {
		if ps.admin != "" && now.Sub(ps.lastSeen) <= targetFresh {
			byKey[k] = known{admin: ps.admin, identity: ps.identity, labels: ps.labels}
		}
	}
	t.mu.Unlock()

	type wl struct {
		name, ns string
		labels   map[string]string
	}
	var list []wl
	if t.opts.Workloads != nil {
		for _, w := range t.opts.Workloads() {
			list = append(list, wl{w.Name, w.Namespace, w.Labels})
		}
	} else {
		for k, p := range byKey {
			ns, name, _ := strings.Cut(k, "/")
			list = append(list, wl{name, ns, p.labels})
		}
	}
	out := []TargetGroup{}
	for _, w := range list {
		p, ok := byKey[w.ns+"/"+w.name]
		if !ok {
			continue
		}
		labels := map[string]string{}
		for k, v := range w.labels {
			k = labelName.ReplaceAllString(k, "_")
			if k == "" || strings.HasPrefix(k, "__") {
				continue
			}
			labels[k] = v
		}
		// The fixed labels win over workload labels of the same name.
		labels["workload"] = w.name
		labels["namespace"] = w.ns
		if p.identity != "" {
			labels["identity"] = p.identity
		}
		out = append(out, TargetGroup{Targets: []string{p.admin}, Labels: labels})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Labels, out[j].Labels
		if a["namespace"] != b["namespace"] {
			return a["namespace"] < b["namespace"]
		}
		return a["workload"] < b["workload"]
	})
	return out
}

func (t *Telemetry) serveTargets(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, t.Targets())
}
