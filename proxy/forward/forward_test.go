package forward

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/stats"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

func prefixRoute(path, cluster string, timeout time.Duration) xdsresource.Route {
	r := xdsresource.Route{Name: path, Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: path, CaseSensitive: true},
		Action: xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{{Name: cluster, Weight: 1}}, Timeout: timeout, HasTimeout: timeout > 0}}
	return r
}

// TestErrorMapping checks every failure's status code and reason.
func TestErrorMapping(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(time.Second)
		}
		w.Header().Set("x-up", "yes")
		io.WriteString(w, "ok")
	}))
	defer slow.Close()
	// Port 1 (tcpmux) has no listener: a connect is refused. A closed
	// ephemeral port could be taken again by the test's own servers.
	deadAddr := "127.0.0.1:1"

	res := &snapshot.Resources{
		Listeners: map[string]*xdsresource.Listener{"outbound": {Name: "outbound", FilterChains: []xdsresource.FilterChain{{HTTP: &xdsresource.HTTPConnectionManager{RouteConfigName: "outbound"}}}}},
		Routes: map[string]*xdsresource.RouteConfiguration{"outbound": {Name: "outbound", VirtualHosts: []xdsresource.VirtualHost{{
			Name: "svc.ns:80", Domains: []string{"svc.ns"},
			Routes: []xdsresource.Route{
				prefixRoute("/slow", "up", 200*time.Millisecond),
				prefixRoute("/missing", "nowhere", 0),
				prefixRoute("/empty", "empty", 0),
				prefixRoute("/dead", "dead", 0),
				{Name: "direct", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathExact, Path: "/teapot", CaseSensitive: true}, Action: xdsresource.RouteAction{DirectStatus: 418, DirectBody: "short and stout"}},
				prefixRoute("/", "up", 0),
			}}}}},
		Clusters: map[string]*xdsresource.Cluster{
			"up":    {Name: "up", Discovery: xdsresource.DiscoveryStatic, LoadAssignment: &xdsresource.ClusterLoadAssignment{Endpoints: []xdsresource.Endpoint{{Address: strings.TrimPrefix(slow.URL, "http://"), Metadata: map[string]string{"version": "v9"}}}}},
			"empty": {Name: "empty", Discovery: xdsresource.DiscoveryEDS},
			"dead":  {Name: "dead", Discovery: xdsresource.DiscoveryStatic, LoadAssignment: &xdsresource.ClusterLoadAssignment{Endpoints: []xdsresource.Endpoint{{Address: deadAddr}}}},
		},
		Endpoints: map[string]*xdsresource.ClusterLoadAssignment{},
	}
	snap, err := snapshot.Compile(res, balancer.NewPool())
	if err != nil {
		t.Fatal(err)
	}
	st := stats.New()
	f := New(Options{Snapshot: func() *snapshot.Snapshot { return snap }, Stats: st})
	defer f.Close()
	srv := httptest.NewServer(f.Handler("outbound", Outbound, ""))
	defer srv.Close()

	for _, tc := range []struct {
		host, path string
		code       int
		reason     string
	}{
		{"svc.ns", "/ok", 200, ""},
		{"svc.ns", "/slow", 504, "request timeout"},
		{"svc.ns", "/missing", 500, "backend nowhere does not exist"},
		{"svc.ns", "/empty", 503, "no healthy upstream for svc.ns"},
		{"svc.ns", "/dead", 503, "upstream connect error"},
		{"svc.ns", "/teapot", 418, ""},
		{"other.ns", "/", 404, "no route for host other.ns"},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		req.Host = tc.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s%s: %v", tc.host, tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("x-weft-error") != tc.reason {
			t.Errorf("%s%s: got %d %q (%s), want %d %q", tc.host, tc.path, resp.StatusCode, resp.Header.Get("x-weft-error"), body, tc.code, tc.reason)
		}
		if tc.code == 200 && resp.Header.Get("x-up") != "yes" {
			t.Errorf("upstream headers lost")
		}
	}
	var ok bool
	for _, e := range st.Edges() {
		if e.Service == "svc.ns" && e.Version == "v9" && e.Requests >= 1 {
			ok = true
		}
	}
	if !ok {
		t.Fatalf("edge stats not recorded: %+v", st.Edges())
	}
}
