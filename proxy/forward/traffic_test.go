package forward

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// rig is a Forwarder in front of hand-built config, served over HTTP/1.1
// and h2c.
type rig struct {
	t    testing.TB
	f    *Forwarder
	snap *snapshot.Snapshot
	srv  *httptest.Server
}

func addrOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func staticCluster(name string, addrs ...string) *xdsresource.Cluster {
	c := &xdsresource.Cluster{Name: name, Discovery: xdsresource.DiscoveryStatic, LoadAssignment: &xdsresource.ClusterLoadAssignment{}}
	for i, a := range addrs {
		c.LoadAssignment.Endpoints = append(c.LoadAssignment.Endpoints, xdsresource.Endpoint{Address: a, Weight: 1, Metadata: map[string]string{"version": fmt.Sprint("v", i)}})
	}
	return c
}

// newRig serves routes for the host svc.ns on the listener "outbound"
// (and "inbound" with rate limit rl, when given).
func newRig(t testing.TB, routes []xdsresource.Route, clusters []*xdsresource.Cluster, rl *xdsresource.LocalRateLimit) *rig {
	t.Helper()
	res := &snapshot.Resources{
		Listeners: map[string]*xdsresource.Listener{
			"outbound": {Name: "outbound", FilterChains: []xdsresource.FilterChain{{HTTP: &xdsresource.HTTPConnectionManager{RouteConfigName: "outbound", RateLimit: rl}}}},
		},
		Routes: map[string]*xdsresource.RouteConfiguration{"outbound": {Name: "outbound", VirtualHosts: []xdsresource.VirtualHost{{
			Name: "svc.ns:80", Domains: []string{"svc.ns", "svc.ns:80"}, Routes: routes}}}},
		Clusters:  map[string]*xdsresource.Cluster{},
		Endpoints: map[string]*xdsresource.ClusterLoadAssignment{},
	}
	for _, c := range clusters {
		res.Clusters[c.Name] = c
	}
	snap, err := snapshot.Compile(res, balancer.NewPool())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, snap: snap}
	r.f = New(Options{Snapshot: func() *snapshot.Snapshot { return r.snap }})
	r.f.Retain(snap)
	r.srv = httptest.NewUnstartedServer(r.f.Handler("outbound", Outbound, ""))
	r.srv.Config.Protocols = new(http.Protocols)
	r.srv.Config.Protocols.SetHTTP1(true)
	r.srv.Config.Protocols.SetUnencryptedHTTP2(true)
	r.srv.Start()
	t.Cleanup(func() { r.srv.Close(); r.f.Close() })
	return r
}

var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type answer struct {
	code   int
	header http.Header
	body   string
}

func (r *rig) do(method, path string, body io.Reader, hdr ...string) answer {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.srv.URL+path, body)
	req.Host = "svc.ns"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func to(cluster string) xdsresource.RouteAction {
	return xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{{Name: cluster, Weight: 1}}}
}

func prefix(p string) xdsresource.RouteMatch {
	return xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: p, CaseSensitive: true}
}

func echo() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s host=%s x-route=%s x-secret=%s", r.Method, r.URL.RequestURI(), r.Host, r.Header.Get("x-route"), r.Header.Get("x-secret"))
	}))
}

func TestRedirect(t *testing.T) {
	sep := xdsresource.RouteMatch{PathKind: xdsresource.PathSeparatedPrefix, Path: "/old", CaseSensitive: true}
	r := newRig(t, []xdsresource.Route{
		{Name: "old", Match: sep, RouteExtras: xdsresource.RouteExtras{Redirect: &xdsresource.Redirect{PrefixRewrite: "/new", HasPrefix: true, StatusCode: 301}}},
		{Name: "secure", Match: prefix("/secure"), RouteExtras: xdsresource.RouteExtras{Redirect: &xdsresource.Redirect{Scheme: "https", StatusCode: 302, StripQuery: true}}},
		{Name: "moved", Match: prefix("/moved"), RouteExtras: xdsresource.RouteExtras{Redirect: &xdsresource.Redirect{Host: "other.ns", Port: 8080, Path: "/landing"}}},
		{Name: "root", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathSeparatedPrefix, Path: "/strip", CaseSensitive: true},
			RouteExtras: xdsresource.RouteExtras{Redirect: &xdsresource.Redirect{PrefixRewrite: "/", HasPrefix: true, StatusCode: 308}}},
	}, nil, nil)
	for _, tc := range []struct {
		path, host string
		code       int
		loc        string
	}{
		{"/old/page?q=1", "svc.ns", 301, "http://svc.ns/new/page?q=1"},
		{"/old", "svc.ns", 301, "http://svc.ns/new"},
		{"/secure/x?q=1", "svc.ns:80", 302, "https://svc.ns/secure/x"},
		{"/moved/x?a=b", "svc.ns", 301, "http://other.ns:8080/landing?a=b"},
		{"/strip/x", "svc.ns:80", 308, "http://svc.ns/x"},
	} {
		req, _ := http.NewRequest("GET", r.srv.URL+tc.path, nil)
		req.Host = tc.host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Location") != tc.loc {
			t.Errorf("%s: %d %q, want %d %q", tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.code, tc.loc)
		}
	}
}

func TestRewriteAndHeaders(t *testing.T) {
	up := echo()
	defer up.Close()
	r := newRig(t, []xdsresource.Route{
		{Name: "api", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathSeparatedPrefix, Path: "/api", CaseSensitive: true}, Action: to("up"),
			RouteExtras: xdsresource.RouteExtras{PrefixRewrite: "/v2", HasPrefixRewrite: true, HostRewrite: "api.internal",
				RequestHeaders:  xdsresource.HeaderMutation{Add: []xdsresource.HeaderValueOption{{Name: "x-route", Value: "api"}, {Name: ":authority", Value: "nope"}}, Remove: []string{"x-secret"}},
				ResponseHeaders: xdsresource.HeaderMutation{Add: []xdsresource.HeaderValueOption{{Name: "x-served-by", Value: "weft", Append: true}}, Remove: []string{"x-internal"}}}},
		{Name: "strip", Match: prefix("/strip"), Action: to("up"),
			RouteExtras: xdsresource.RouteExtras{PrefixRewrite: "/", HasPrefixRewrite: true}},
		{Name: "regex", Match: prefix("/r/"), Action: to("up"),
			RouteExtras: xdsresource.RouteExtras{RegexRewrite: &xdsresource.RegexRewrite{Pattern: regexp.MustCompile(`^/r/([a-z]+)/(\d+)$`), Substitution: "/${2}/${1}"}}},
	}, []*xdsresource.Cluster{staticCluster("up", addrOf(up))}, nil)

	a := r.do("GET", "/api/users?id=7", nil, "x-secret", "s3cr3t", "x-route", "client-says")
	if want := "GET /v2/users?id=7 host=api.internal x-route=api x-secret="; a.code != 200 || a.body != want {
		t.Fatalf("app saw %d %q, want %q", a.code, a.body, want)
	}
	if a.header.Get("x-served-by") != "weft" {
		t.Fatalf("response header not added: %v", a.header)
	}
	if a := r.do("GET", "/strip/a/b", nil); a.body != "GET /a/b host=svc.ns x-route= x-secret=" {
		t.Fatalf("prefix / rewrite: %q", a.body)
	}
	if a := r.do("GET", "/r/items/42", nil); a.body != "GET /42/items host=svc.ns x-route= x-secret=" {
		t.Fatalf("regex rewrite: %q", a.body)
	}
}

// flaky answers 503 on every other request.
func flaky(hits *atomic.Int64) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if hits.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "flaky got %d bytes", len(b))
	}))
}

func retryPolicy(on ...string) *xdsresource.RetryPolicy {
	return &xdsresource.RetryPolicy{RetryOn: on, NumRetries: 2, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, PreviousHosts: true,
		RetriableStatusCodes: []uint32{503}}
}

func TestRetryHidesFlakyEndpoint(t *testing.T) {
	var flakyHits, goodHits atomic.Int64
	bad := flaky(&flakyHits)
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		io.WriteString(w, "good")
	}))
	defer good.Close()
	r := newRig(t, []xdsresource.Route{
		{Name: "all", Match: prefix("/"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Retry: retryPolicy("connect-failure", "retriable-status-codes")}},
	}, []*xdsresource.Cluster{staticCluster("up", addrOf(bad), addrOf(good))}, nil)
	for i := range 100 {
		if a := r.do("GET", "/", nil); a.code != 200 {
			t.Fatalf("request %d: %d %q", i, a.code, a.body)
		}
	}
	if flakyHits.Load() < 20 {
		t.Fatalf("the flaky endpoint was not exercised: %d", flakyHits.Load())
	}
	if st := r.snap.Clusters["up"].Picker.Stats(); st.Retries == 0 {
		t.Fatalf("retries not counted: %+v", st)
	}
}

func TestRetryMethodsAndBodies(t *testing.T) {
	var hits atomic.Int64
	bad := flaky(&hits) // 1st ok, 2nd 503, 3rd ok...
	defer bad.Close()
	getOnly := retryPolicy("5xx")
	getOnly.RetriableMethods = []string{"GET", "PUT"}
	r := newRig(t, []xdsresource.Route{
		{Name: "small", Match: prefix("/small"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Retry: getOnly, BufferLimit: 64}},
		{Name: "all", Match: prefix("/"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Retry: getOnly}},
	}, []*xdsresource.Cluster{staticCluster("up", addrOf(bad))}, nil)
	r.do("GET", "/", nil) // hits=1: the next one fails

	t.Run("POST is not retried", func(t *testing.T) {
		before := hits.Load()
		if a := r.do("POST", "/", strings.NewReader("x")); a.code != 503 || hits.Load()-before != 1 {
			t.Fatalf("POST: %d after %d attempts", a.code, hits.Load()-before)
		}
	})
	t.Run("a small body is replayed", func(t *testing.T) {
		if hits.Load()%2 == 0 {
			r.do("GET", "/", nil) // now the next one fails
		}
		before := hits.Load()
		body := strings.Repeat("b", 1000)
		// Unknown length (chunked): recorded while streaming.
		a := r.do("PUT", "/", io.MultiReader(strings.NewReader(body)))
		if a.code != 200 || a.body != "flaky got 1000 bytes" || hits.Load()-before != 2 {
			t.Fatalf("PUT: %d %q after %d attempts", a.code, a.body, hits.Load()-before)
		}
	})
	t.Run("a body over the buffer limit is not retried", func(t *testing.T) {
		if hits.Load()%2 == 0 {
			r.do("GET", "/", nil)
		}
		before := hits.Load()
		for _, body := range []io.Reader{strings.NewReader(strings.Repeat("b", 100)), io.MultiReader(strings.NewReader(strings.Repeat("b", 100)))} {
			a := r.do("PUT", "/small", body)
			if hits.Load()-before == 1 && a.code != 503 {
				t.Fatalf("PUT over the limit: %d %q", a.code, a.body)
			}
			if a.code == 503 && hits.Load()-before != 1 {
				t.Fatalf("PUT over the limit retried: %d attempts", hits.Load()-before)
			}
			if hits.Load()%2 == 0 {
				r.do("GET", "/", nil)
			}
			before = hits.Load()
		}
	})
}

func TestRetryBudgetStopsRetries(t *testing.T) {
	var hits atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer down.Close()
	c := staticCluster("up", addrOf(down))
	c.CircuitBreakers.RetryBudget = &xdsresource.RetryBudget{Percent: 10}
	p := retryPolicy("5xx")
	p.NumRetries = 3
	r := newRig(t, []xdsresource.Route{{Name: "all", Match: prefix("/"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Retry: p}}},
		[]*xdsresource.Cluster{c}, nil)
	const n = 50
	for range n {
		if a := r.do("GET", "/", nil); a.code != 500 {
			t.Fatalf("want the app's 500, got %d", a.code)
		}
	}
	if h := hits.Load(); h > n*12/10 {
		t.Fatalf("%d attempts for %d requests: the budget did not bound retries", h, n)
	}
	if st := r.snap.Clusters["up"].Picker.Stats(); st.RetryOverflow == 0 {
		t.Fatalf("refused retries not counted: %+v", st)
	}
}

func TestCircuitBreakerOverflow(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	}))
	defer slow.Close()
	c := staticCluster("up", addrOf(slow))
	c.CircuitBreakers.MaxRequests = 1
	r := newRig(t, []xdsresource.Route{{Name: "all", Match: prefix("/"), Action: to("up")}}, []*xdsresource.Cluster{c}, nil)
	first := make(chan answer)
	go func() { first <- r.do("GET", "/", nil) }()
	<-entered
	start := time.Now()
	a := r.do("GET", "/", nil)
	if a.code != 503 || a.header.Get("x-weft-error") != "overflow" || time.Since(start) > time.Second {
		t.Fatalf("second request: %d %q after %v", a.code, a.header.Get("x-weft-error"), time.Since(start))
	}
	close(release)
	if a := <-first; a.code != 200 {
		t.Fatalf("first request: %d", a.code)
	}
}

func TestFaults(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer up.Close()
	r := newRig(t, []xdsresource.Route{
		{Name: "delay", Match: prefix("/delay"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Fault: &xdsresource.Fault{Delay: 30 * time.Millisecond, DelayPerMillion: 500_000}}},
		{Name: "abort", Match: prefix("/abort"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Fault: &xdsresource.Fault{AbortStatus: 418, AbortPerMillion: 250_000}}},
		{Name: "grpc", Match: prefix("/grpc"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{Fault: &xdsresource.Fault{AbortGRPCStatus: 14, HasGRPCAbort: true, AbortPerMillion: 1_000_000}}},
	}, []*xdsresource.Cluster{staticCluster("up", addrOf(up))}, nil)

	const n = 400
	aborted := 0
	for range n {
		a := r.do("GET", "/abort", nil)
		switch {
		case a.code == 418 && a.header.Get("x-weft-error") == "fault injected":
			aborted++
		case a.code != 200:
			t.Fatalf("abort route: %d", a.code)
		}
	}
	if aborted < n*17/100 || aborted > n*33/100 || hits.Load() != int64(n-aborted) {
		t.Fatalf("aborted %d/%d (want 25%%), %d reached the app", aborted, n, hits.Load())
	}

	const m = 60
	delayed := 0
	for range m {
		start := time.Now()
		r.do("GET", "/delay", nil)
		if time.Since(start) >= 30*time.Millisecond {
			delayed++
		}
	}
	if d := delayed; d < m*30/100 || d > m*75/100 {
		t.Fatalf("delayed %d/%d, want about 50%%", d, m)
	}

	a := r.do("POST", "/grpc", strings.NewReader(""), "Content-Type", "application/grpc")
	if a.code != 200 || a.header.Get("Grpc-Status") != "14" || a.header.Get("Grpc-Message") != "fault%20injected" || a.body != "" ||
		a.header.Get("Content-Type") != "application/grpc" {
		t.Fatalf("gRPC abort: %d %v %q", a.code, a.header, a.body)
	}
}

func TestGRPCLocalReplies(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // then the server notices the proxy leaving
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()
	r := newRig(t, []xdsresource.Route{
		{Name: "grpc", Match: prefix("/"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{GRPCOnly: true}},
	}, []*xdsresource.Cluster{staticCluster("up", addrOf(hang))}, nil)
	start := time.Now()
	a := r.do("POST", "/pkg.Svc/Method", strings.NewReader("x"), "Content-Type", "application/grpc+proto", "Grpc-Timeout", "100m")
	if a.code != 200 || a.header.Get("Grpc-Status") != "4" || a.header.Get("x-weft-error") != "request timeout" || time.Since(start) > 3*time.Second {
		t.Fatalf("grpc-timeout: %d %v after %v", a.code, a.header, time.Since(start))
	}
	// Not gRPC: the route does not match.
	if a := r.do("POST", "/pkg.Svc/Method", strings.NewReader("x")); a.code != 404 {
		t.Fatalf("non-gRPC request on a gRPC route: %d", a.code)
	}
}

func TestMirror(t *testing.T) {
	up := echo()
	defer up.Close()
	got := make(chan string, 10)
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.Method + " " + r.Host + " " + r.URL.Path + " " + string(b)
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "shadow says no")
	}))
	defer shadow.Close()
	r := newRig(t, []xdsresource.Route{
		{Name: "m", Match: prefix("/"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{
			Mirrors: []xdsresource.MirrorPolicy{{Cluster: "shadow", PerMillion: 1_000_000}}, BufferLimit: 16}},
	}, []*xdsresource.Cluster{staticCluster("up", addrOf(up)), staticCluster("shadow", addrOf(shadow))}, nil)
	if a := r.do("GET", "/m/x", nil); a.code != 200 || !strings.HasPrefix(a.body, "GET /m/x") {
		t.Fatalf("main answer: %d %q", a.code, a.body)
	}
	if a := r.do("POST", "/m/y", strings.NewReader("hello")); a.code != 200 {
		t.Fatalf("main answer: %d %q", a.code, a.body)
	}
	if a := r.do("POST", "/m/big", strings.NewReader(strings.Repeat("z", 100))); a.code != 200 {
		t.Fatalf("main answer: %d %q", a.code, a.body)
	}
	want := map[string]bool{"GET svc.ns-shadow /m/x ": true, "POST svc.ns-shadow /m/y hello": true}
	for len(want) > 0 {
		select {
		case s := <-got:
			if !want[s] {
				t.Fatalf("unexpected mirror %q", s)
			}
			delete(want, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("mirrors missing: %v", want)
		}
	}
	select {
	case s := <-got:
		t.Fatalf("a body over the buffer limit was mirrored: %q", s)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestRingHashCookie(t *testing.T) {
	var servers []*httptest.Server
	var addrs []string
	for i := range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, i) }))
		defer s.Close()
		servers = append(servers, s)
		addrs = append(addrs, addrOf(s))
	}
	c := staticCluster("up", addrs...)
	c.LBPolicy = xdsresource.LBRingHash
	r := newRig(t, []xdsresource.Route{{Name: "h", Match: prefix("/"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{
		HashPolicies: []xdsresource.HashPolicy{{Header: "x-user"}, {Cookie: "weft-affinity", CookieTTL: time.Hour, CookiePath: "/"}}}}},
		[]*xdsresource.Cluster{c}, nil)
	a := r.do("GET", "/", nil)
	sc := a.header.Get("Set-Cookie")
	if a.code != 200 || !strings.HasPrefix(sc, "weft-affinity=") || !strings.Contains(sc, "Max-Age=3600") {
		t.Fatalf("no affinity cookie: %d %q", a.code, sc)
	}
	cookie := strings.SplitN(sc, ";", 2)[0]
	first := a.body
	for range 10 {
		a := r.do("GET", "/", nil, "Cookie", cookie)
		if a.body != first || a.header.Get("Set-Cookie") != "" {
			t.Fatalf("cookie %s went to %s (first %s), set-cookie %q", cookie, a.body, first, a.header.Get("Set-Cookie"))
		}
	}
	// The header policy comes first and sets no cookie.
	seen := map[string]bool{}
	for i := range 30 {
		a := r.do("GET", "/", nil, "x-user", fmt.Sprint("u", i))
		if a.header.Get("Set-Cookie") != "" {
			t.Fatal("cookie set although the header gave the key")
		}
		seen[a.body] = true
	}
	if len(seen) < 2 {
		t.Fatalf("30 keys all on %v", seen)
	}
}

func TestRateLimit(t *testing.T) {
	up := echo()
	defer up.Close()
	bucket := func(n uint32) *xdsresource.LocalRateLimit {
		return &xdsresource.LocalRateLimit{Bucket: &xdsresource.TokenBucket{MaxTokens: n, TokensPerFill: n, FillInterval: time.Hour}, Enabled: 1_000_000, Enforced: 1_000_000}
	}
	r := newRig(t, []xdsresource.Route{
		{Name: "route", Match: prefix("/limited"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{RateLimit: bucket(2)}},
		{Name: "off", Match: prefix("/off"), Action: to("up"), RouteExtras: xdsresource.RouteExtras{RateLimit: &xdsresource.LocalRateLimit{Bucket: &xdsresource.TokenBucket{MaxTokens: 1, FillInterval: time.Hour}}}},
		{Name: "all", Match: prefix("/"), Action: to("up")},
	}, []*xdsresource.Cluster{staticCluster("up", addrOf(up))}, bucket(10))
	codes := func(path string, n int) (ok, limited int) {
		for range n {
			a := r.do("GET", path, nil)
			switch a.code {
			case 200:
				ok++
			case 429:
				limited++
				ra, err := strconv.Atoi(a.header.Get("Retry-After"))
				if err != nil || ra < 1 || a.header.Get("x-weft-error") != "rate limited" {
					t.Fatalf("429 answer: %v", a.header)
				}
			default:
				t.Fatalf("%s: %d", path, a.code)
			}
		}
		return
	}
	if ok, limited := codes("/limited", 4); ok != 2 || limited != 2 {
		t.Fatalf("route limit: %d ok, %d limited", ok, limited)
	}
	// Not enabled: unlimited. A route's own config replaces the
	// listener's, so these take none of its tokens either.
	if ok, limited := codes("/off", 3); ok != 3 || limited != 0 {
		t.Fatalf("disabled limit: %d ok, %d limited", ok, limited)
	}
	// Routes without their own limit share the listener's 10 tokens.
	if ok, limited := codes("/", 12); limited != 2 || ok != 10 {
		t.Fatalf("listener limit: %d ok, %d limited", ok, limited)
	}
}

// TestUpgrade: 101 turns the connection into a tunnel (over HTTP/1.1 to
// an HTTP/2 cluster); a 200 answer to an upgrade request does not.
func TestUpgrade(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/echo" {
			io.WriteString(w, "not upgrading "+r.Proto)
			return
		}
		if r.ProtoMajor != 1 || r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want HTTP/1.1 upgrade, got "+r.Proto, 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	}))
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetHTTP1(true)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Start()
	defer up.Close()
	c := staticCluster("up", addrOf(up))
	c.HTTP2 = true // h2c upstream (the test server speaks h2c too)
	r := newRig(t, []xdsresource.Route{{Name: "all", Match: prefix("/"), Action: xdsresource.RouteAction{
		Clusters: []xdsresource.WeightedCluster{{Name: "up", Weight: 1}}, Timeout: 200 * time.Millisecond, HasTimeout: true}}},
		[]*xdsresource.Cluster{c}, nil)

	raw, err := net.Dial("tcp", addrOf(r.srv))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(raw)
	fmt.Fprintf(raw, "GET /echo HTTP/1.1\r\nHost: svc.ns\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// Outlive the route timeout: it bounds the handshake only.
	time.Sleep(300 * time.Millisecond)
	for i := range 3 {
		msg := fmt.Sprintf("ping %d\n", i)
		io.WriteString(raw, msg)
		line, err := br.ReadString('\n')
		if err != nil || line != msg {
			t.Fatalf("tunnel: %q %v", line, err)
		}
	}

	raw2, err := net.Dial("tcp", addrOf(r.srv))
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	raw2.SetDeadline(time.Now().Add(5 * time.Second))
	br2 := bufio.NewReader(raw2)
	fmt.Fprintf(raw2, "GET /no-upgrade HTTP/1.1\r\nHost: svc.ns\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	resp, err = http.ReadResponse(br2, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "not upgrading HTTP/1.1" {
		t.Fatalf("200 answer: %d %q", resp.StatusCode, body)
	}
	fmt.Fprintf(raw2, "GET /after HTTP/1.1\r\nHost: svc.ns\r\n\r\n")
	resp, err = http.ReadResponse(br2, nil)
	if err != nil {
		t.Fatalf("the connection became a tunnel: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "not upgrading HTTP/2.0" {
		t.Fatalf("plain request after: %d %q", resp.StatusCode, body)
	}
}

func TestTCPWeights(t *testing.T) {
	backend := func(name string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte(name))
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	res := &snapshot.Resources{
		Listeners: map[string]*xdsresource.Listener{
			"outbound-tcp|5432||db.ns": {Name: "outbound-tcp|5432||db.ns", Address: "0.0.0.0:5432", NoBind: true, FilterChains: []xdsresource.FilterChain{{
				TCP: &xdsresource.TCPProxy{Clusters: []xdsresource.WeightedCluster{{Name: "a", Weight: 80}, {Name: "b", Weight: 20}, {Name: "never", Weight: 0}}}}}},
		},
		Clusters: map[string]*xdsresource.Cluster{"a": staticCluster("a", backend("a")), "b": staticCluster("b", backend("b"))},
	}
	snap, err := snapshot.Compile(res, balancer.NewPool())
	if err != nil {
		t.Fatal(err)
	}
	f := New(Options{Snapshot: func() *snapshot.Snapshot { return snap }})
	defer f.Close()
	counts := map[string]int{}
	const n = 1000
	for range n {
		c1, c2 := net.Pipe()
		go f.ServeTCP(c2, "outbound-tcp|5432||db.ns", "", Outbound)
		c1.SetDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c1)
		c1.Close()
		counts[string(b)]++
	}
	if counts["a"]+counts["b"] != n || counts["a"] < n*75/100 || counts["a"] > n*85/100 {
		t.Fatalf("want 80/20: %v", counts)
	}
}
