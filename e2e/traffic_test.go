package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTrafficRouting: Gateway API routing end to end — a 90/10 canary,
// header-based A/B, redirect, rewrite with header modifiers, and a mirror
// whose copies reach the shadow while its answers are ignored.
func TestTrafficRouting(t *testing.T) {
	cp := newControlPlane(t)
	web := startFleet(t, cp, "web", 2, func(i int, in *instance) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s %s host=%s x-route=%s x-secret=%s", in.name, r.Method, r.URL.RequestURI(), r.Host,
				r.Header.Get("x-route"), r.Header.Get("x-secret"))
		})
	}, nil)
	var shadowHosts sync.Map
	shadow := startFleet(t, cp, "shadow", 1, func(i int, in *instance) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			shadowHosts.Store(r.Host+" "+r.URL.Path, true)
			// The shadow's answer must never reach the client.
			w.WriteHeader(http.StatusInternalServerError)
			io_WriteString(w, "shadow says no")
		})
	}, nil)
	cp.apply(t, fleetServiceYAML("web", web.port, "")+
		appServiceYAML("web-v1", "web", web.port, "version: v1")+
		appServiceYAML("web-v2", "web", web.port, "version: v2")+
		fleetServiceYAML("shadow", shadow.port, "")+`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: web, port: 80}]
  rules:
  - matches: [{headers: [{name: x-variant, value: b}]}]
    backendRefs: [{name: web-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: api.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: api}], remove: [x-secret]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-served-by, value: weft}]}
    backendRefs: [{name: web-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 80}}
    backendRefs: [{name: web-v1, port: 80}]
  - backendRefs:
    - {name: web-v1, port: 80, weight: 90}
    - {name: web-v2, port: 80, weight: 10}
`)
	web.sidecars(t, cp, func(i int) []string { return []string{fmt.Sprintf("version=v%d", i+1)} })
	shadow.sidecars(t, cp, nil)
	client := startSidecar(t, cp, sidecarOpts{workload: "client-1", namespace: "shop"})
	c := proxyClient(client)
	waitFor(t, "routes in place", 15*time.Second, func() error {
		rs := send(c, 20, 4, func(int) *http.Request { return getReq("http://web.shop/mirror/x") })
		if e := firstErr(rs); e != "" {
			return fmt.Errorf("%s", e)
		}
		if _, ok := shadowHosts.Load("web.shop-shadow /mirror/x"); !ok {
			return fmt.Errorf("mirror not delivered yet")
		}
		return nil
	})

	t.Run("canary 90/10 over 2000 requests", func(t *testing.T) {
		rs := send(c, 2000, 16, func(int) *http.Request { return getReq("http://web.shop/items") })
		if e := firstErr(rs); e != "" {
			t.Fatalf("errors in the canary: %v (first: %s)", statusCounts(rs), e)
		}
		b := backends(rs)
		if !within(b["web-0"], len(rs), 0.90, 0.03) {
			t.Fatalf("v1 share %d/2000, want 90%% ± 3%% (%v)", b["web-0"], b)
		}
	})

	t.Run("header A/B", func(t *testing.T) {
		rs := send(c, 50, 4, func(int) *http.Request { return getReq("http://web.shop/items", "x-variant", "b") })
		if b := backends(rs); b["web-1"] != 50 {
			t.Fatalf("x-variant: b must reach v2 only: %v %s", b, firstErr(rs))
		}
		rs = send(c, 50, 4, func(int) *http.Request { return getReq("http://web.shop/items", "x-variant", "c") })
		if b := backends(rs); b["web-0"]+b["web-1"] != 50 || b["web-0"] < 30 {
			t.Fatalf("other variants follow the split: %v", b)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		nc := *c
		nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		rs := send(&nc, 1, 1, func(int) *http.Request { return getReq("http://web.shop/old/page?q=1") })
		r := rs[0]
		if r.err != nil || r.code != http.StatusMovedPermanently {
			t.Fatalf("redirect: %d %v %s", r.code, r.err, r.body)
		}
		if loc := r.header.Get("Location"); loc != "http://web.shop/new/page?q=1" {
			t.Fatalf("Location %q, want http://web.shop/new/page?q=1", loc)
		}
		if web.totalHits() == 0 {
			t.Fatal("precondition: traffic reached the app before")
		}
	})

	t.Run("rewrite and header modifiers", func(t *testing.T) {
		rs := send(c, 1, 1, func(int) *http.Request {
			return getReq("http://web.shop/api/users?id=7", "x-secret", "s3cr3t", "x-route", "client-says")
		})
		r := rs[0]
		if r.err != nil || r.code != 200 {
			t.Fatalf("rewrite: %d %v %s", r.code, r.err, r.body)
		}
		want := "web-0 GET /v2/users?id=7 host=api.internal x-route=api x-secret="
		if r.body != want {
			t.Fatalf("the app saw %q, want %q", r.body, want)
		}
		if r.header.Get("x-served-by") != "weft" {
			t.Fatalf("response header not added: %v", r.header)
		}
	})

	t.Run("mirror", func(t *testing.T) {
		shadow.resetHits()
		before := web.inst[0].hits.Load()
		// 60 copies: fewer than the 64 a proxy keeps in flight before it
		// drops copies (a slow shadow must not cost the proxy memory).
		rs := send(c, 60, 6, func(i int) *http.Request { return getReq(fmt.Sprintf("http://web.shop/mirror/%d", i)) })
		if e := firstErr(rs); e != "" {
			t.Fatalf("mirrored requests must get the primary's answer: %v (first: %s)", statusCounts(rs), e)
		}
		if got := web.inst[0].hits.Load() - before; got != 60 {
			t.Fatalf("primary got %d of 60", got)
		}
		// Copies are sent asynchronously: give them a moment.
		waitFor(t, "all copies at the shadow", 5*time.Second, func() error {
			if n := shadow.totalHits(); n != 60 {
				return fmt.Errorf("shadow got %d of 60", n)
			}
			return nil
		})
	})
}

// io_WriteString avoids importing io only for this.
func io_WriteString(w http.ResponseWriter, s string) { _, _ = w.Write([]byte(s)) }

// TestTrafficResilience: retries hide a flaky instance, the retry budget
// stops a storm, a circuit breaker sheds load, an outlier is ejected and
// comes back, rate limits answer 429, and faults are injected at their
// percentages.
func TestTrafficResilience(t *testing.T) {
	cp := newControlPlane(t)
	// flaky: instance 0 fails every other request; instance 1 is fine.
	var flakyN atomic.Int64
	flaky := startFleet(t, cp, "flaky", 2, func(i int, in *instance) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if i == 0 && flakyN.Add(1)%2 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io_WriteString(w, in.name)
		})
	}, nil)
	broken := startFleet(t, cp, "broken", 2, func(i int, in *instance) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	}, nil)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	slow := startFleet(t, cp, "slow", 1, func(i int, in *instance) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			io_WriteString(w, "slow done")
		})
	}, nil)
	eject := startFleet(t, cp, "eject", 2, nil, nil)
	limited := startFleet(t, cp, "limited", 1, nil, nil)
	faulty := startFleet(t, cp, "faulty", 1, nil, nil)
	cp.apply(t, fleetServiceYAML("flaky", flaky.port, "")+fleetServiceYAML("broken", broken.port, "")+
		fleetServiceYAML("slow", slow.port, "")+fleetServiceYAML("eject", eject.port, "")+
		fleetServiceYAML("limited", limited.port, "")+fleetServiceYAML("faulty", faulty.port, "")+`apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: broken, namespace: shop}
spec:
  targetRef: {kind: Service, name: broken}
  outlierDetection: {consecutive5xxErrors: 0}
  retries: {attempts: 3, retryOn: [5xx], backoff: {baseInterval: 1ms, maxInterval: 2ms}}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: slow, namespace: shop}
spec:
  targetRef: {kind: Service, name: slow}
  connectionPool: {maxRequests: 2}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: eject, namespace: shop}
spec:
  targetRef: {kind: Service, name: eject}
  outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 50}
  retries: {attempts: 0}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: limited, namespace: shop}
spec:
  targetRef: {kind: Service, name: limited}
  rateLimit: {requestsPerSecond: 5, burst: 5}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: faulty, namespace: shop}
spec:
  targetRef: {kind: Service, name: faulty}
  faults:
    delay: {fixedDelay: 150ms, percent: 30}
    abort: {httpStatus: 418, percent: 20}
`)
	for _, f := range []*fleet{flaky, broken, slow, eject, limited, faulty} {
		f.sidecars(t, cp, nil)
	}
	client := startSidecar(t, cp, sidecarOpts{workload: "client-1", namespace: "shop"})
	c := proxyClient(client)
	c.Timeout = 10 * time.Second
	waitFor(t, "every service reachable", 15*time.Second, func() error {
		for _, s := range []string{"flaky", "eject", "limited"} {
			rs := send(c, 1, 1, func(int) *http.Request { return getReq("http://" + s + ".shop/") })
			if rs[0].err != nil || rs[0].backend == "" {
				return fmt.Errorf("%s: %d %v %s", s, rs[0].code, rs[0].err, rs[0].body)
			}
		}
		return nil
	})
	limitedWarm := limited.totalHits()

	t.Run("retries hide an instance failing every other request", func(t *testing.T) {
		rs := send(c, 400, 8, func(int) *http.Request { return getReq("http://flaky.shop/") })
		if cs := statusCounts(rs); cs[200] != 400 {
			t.Fatalf("client saw errors: %v (first: %s)", cs, firstErr(rs))
		}
		if flaky.inst[0].hits.Load() < 50 {
			t.Fatalf("the flaky instance was not exercised: %v", flaky.hits())
		}
	})

	t.Run("the retry budget stops a retry storm", func(t *testing.T) {
		const n = 300
		rs := send(c, n, 10, func(int) *http.Request { return getReq("http://broken.shop/") })
		if cs := statusCounts(rs); cs[500] != n {
			t.Fatalf("every request must fail with the app's 500: %v", cs)
		}
		// Without a budget, 3 retries would make 4 × 300 = 1200 attempts.
		// The budget allows 20 % of requests plus 10 retries/s.
		hits := broken.totalHits()
		if hits < n || hits > n*16/10 {
			t.Fatalf("%d attempts for %d requests: the budget did not bound retries (want %d..%d)", hits, n, n, n*16/10)
		}
		t.Logf("%d requests, %d attempts", n, hits)
		if st := clusterStats(t, client, "outbound|80||broken.shop"); st.RetryOverflow == 0 || st.Retries == 0 {
			t.Fatalf("the proxy did not count retries and budget refusals: %+v", st)
		}
	})

	t.Run("circuit breaker answers 503 past its limit", func(t *testing.T) {
		var wg sync.WaitGroup
		var shed atomic.Int64
		results := make([]result, 10)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = send(c, 1, 1, func(int) *http.Request { return getReq("http://slow.shop/") })[0]
				if results[i].code == 503 {
					shed.Add(1)
				}
			}()
			time.Sleep(20 * time.Millisecond)
		}
		// The first two hold the only slots; the rest overflow at once.
		waitFor(t, "overflow answers", 3*time.Second, func() error {
			if n := shed.Load(); n < 8 {
				return fmt.Errorf("%d overflowed so far", n)
			}
			return nil
		})
		releaseOnce.Do(func() { close(release) })
		wg.Wait()
		cs := statusCounts(results)
		if cs[200] != 2 || cs[503] != 8 {
			t.Fatalf("want 2 served and 8 shed: %v", cs)
		}
		for _, r := range results {
			if r.code == 503 && r.header.Get("x-weft-error") == "" {
				t.Fatalf("overflow answer without x-weft-error: %v", r.header)
			}
		}
		if st := clusterStats(t, client, "outbound|80||slow.shop"); st.Overflow < 8 {
			t.Fatalf("overflows not counted: %+v", st)
		}
	})

	t.Run("a failing endpoint is ejected and returns", func(t *testing.T) {
		eject.inst[0].fail.Store(500)
		eject.resetHits()
		rs := send(c, 40, 1, func(int) *http.Request { return getReq("http://eject.shop/") })
		fails := statusCounts(rs)[500]
		if fails == 0 || fails > 3 {
			t.Fatalf("want at most 3 failures before ejection, got %d (%v)", fails, statusCounts(rs))
		}
		bad := eject.inst[0].hits.Load()
		rs = send(c, 20, 1, func(int) *http.Request { return getReq("http://eject.shop/") })
		if cs := statusCounts(rs); cs[200] != 20 || eject.inst[0].hits.Load() != bad {
			t.Fatalf("the ejected endpoint still got traffic: %v %v", cs, eject.hits())
		}
		// Heal it; after the ejection time it serves again.
		eject.inst[0].fail.Store(0)
		time.Sleep(3500 * time.Millisecond)
		rs = send(c, 20, 1, func(int) *http.Request { return getReq("http://eject.shop/") })
		if cs := statusCounts(rs); cs[200] != 20 {
			t.Fatalf("after the ejection: %v", cs)
		}
		if eject.inst[0].hits.Load() == bad {
			t.Fatalf("the endpoint did not return after its ejection time: %v", eject.hits())
		}
	})

	t.Run("rate limit answers 429 with Retry-After", func(t *testing.T) {
		// The bucket (5 tokens, 5/s) may have refilled since warm-up, and
		// refills by 5/s while the requests are sent (slowly, on a loaded
		// machine): at most burst + 5 × elapsed (+1 for a token in flight)
		// are served.
		start := time.Now()
		rs := send(c, 30, 1, func(int) *http.Request { return getReq("http://limited.shop/") })
		elapsed := time.Since(start)
		cs := statusCounts(rs)
		most := 5 + int(math.Ceil(elapsed.Seconds()*5)) + 1
		if cs[200] < 3 || cs[200] > most || cs[429] < 30-most || cs[200]+cs[429] != 30 {
			t.Fatalf("want about 5 served and the rest 429: %v in %v (at most %d served; warm-up hits %d)", cs, elapsed, most, limitedWarm)
		}
		for _, r := range rs {
			if r.code == 429 {
				if r.header.Get("Retry-After") == "" {
					t.Fatalf("429 without Retry-After: %v", r.header)
				}
				break
			}
		}
	})

	t.Run("faults: delay and abort at their percentages", func(t *testing.T) {
		const n = 1000
		rs := send(c, n, 25, func(int) *http.Request { return getReq("http://faulty.shop/") })
		cs := statusCounts(rs)
		if cs[418]+cs[200] != n {
			t.Fatalf("unexpected answers: %v (first: %s)", cs, firstErr(rs))
		}
		if !within(cs[418], n, 0.20, 0.05) {
			t.Fatalf("aborts %d/%d, want 20%% ± 5%%", cs[418], n)
		}
		delayed := 0
		for _, r := range rs {
			if r.latency >= 150*time.Millisecond {
				delayed++
			}
		}
		if !within(delayed, n, 0.30, 0.05) {
			t.Fatalf("delayed %d/%d, want 30%% ± 5%%", delayed, n)
		}
		if int64(cs[200]) != faulty.totalHits() {
			t.Fatalf("aborted requests reached the app: %d served, %d hits", cs[200], faulty.totalHits())
		}
	})
}

// clusterStats reads one cluster's counters from a sidecar's admin server.
func clusterStats(t *testing.T, s *sidecar, cluster string) clusterCounters {
	t.Helper()
	var body struct {
		Clusters map[string]clusterCounters `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(adminGet(t, s.admin, "/stats/clusters")), &body); err != nil {
		t.Fatalf("/stats/clusters: %v", err)
	}
	return body.Clusters[cluster]
}

type clusterCounters struct {
	Overflow      uint64 `json:"overflow"`
	RetryOverflow uint64 `json:"retryOverflow"`
	Retries       uint64 `json:"retries"`
	Ejections     uint64 `json:"ejections"`
}
