package xdsconfig_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/xdsconfig"
)

// stateCase is a golden case built from a model.State directly (traffic
// management), checked against testdata/NAME/golden.json for the workload
// node.
type stateCase struct {
	node  string
	state func() *model.State
}

var day = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func svc(name string, selector map[string]string, ports ...model.ServicePort) *model.Service {
	return &model.Service{Name: name, Namespace: "shop", Selector: selector, Ports: ports}
}

func httpPort(port, target uint32) model.ServicePort {
	return model.ServicePort{Name: "http", Port: port, TargetPort: target, Protocol: "HTTP"}
}

func client() *model.Workload {
	return &model.Workload{Name: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web"}, Address: "10.0.0.1",
		Outbound: "127.0.0.1:15001", Inbound: []model.InboundPort{{Port: 15006, AppPort: 8000, Protocol: "HTTP"}}, Connected: true}
}

func server(name, app, addr string, labels map[string]string, inbound ...model.InboundPort) *model.Workload {
	l := map[string]string{"app": app}
	for k, v := range labels {
		l[k] = v
	}
	if len(inbound) == 0 {
		inbound = []model.InboundPort{{Port: 15006, AppPort: 8080, Protocol: "HTTP"}}
	}
	return &model.Workload{Name: name, Namespace: "shop", Labels: l, Address: addr, Inbound: inbound, Connected: true}
}

func backend(name string, port, weight uint32) model.Backend {
	return model.Backend{Service: name, Namespace: "shop", Port: port, Weight: weight}
}

func prefix(p string) model.RouteMatch { return model.RouteMatch{PathType: model.PathPrefix, Path: p} }

func parent(name string) []model.ParentRef {
	return []model.ParentRef{{Service: name, Namespace: "shop"}}
}

func state(st *model.State) *model.State {
	st.Sort()
	return st
}

var stateCases = map[string]stateCase{
	// Rule filters: redirects, rewrites, header modifiers, mirrors.
	"filters": {node: "web-1", state: func() *model.State {
		return state(&model.State{
			Services: []*model.Service{
				svc("catalog", map[string]string{"app": "catalog"}, httpPort(80, 8080)),
				svc("shadow", map[string]string{"app": "shadow"}, httpPort(80, 8080)),
			},
			Routes: []*model.HTTPRoute{{
				Kind: "HTTPRoute", Name: "catalog", Namespace: "shop", Created: day, Parents: parent("catalog"),
				Rules: []model.RouteRule{
					{Matches: []model.RouteMatch{prefix("/old")}, Filters: model.Filters{Redirect: &model.Redirect{
						Scheme: "https", Hostname: "shop.example", Port: 443, Path: &model.PathRewrite{PrefixMatch: ptr("/new")}, StatusCode: 301}}},
					{Matches: []model.RouteMatch{{PathType: model.PathExact, Path: "/moved"}}, Filters: model.Filters{Redirect: &model.Redirect{
						Path: &model.PathRewrite{FullPath: ptr("/here")}}}},
					{Matches: []model.RouteMatch{prefix("/api/")}, Backends: []model.Backend{backend("catalog", 80, 1)},
						Filters: model.Filters{Rewrite: &model.URLRewrite{Path: &model.PathRewrite{PrefixMatch: ptr("/")}}}},
					{Matches: []model.RouteMatch{prefix("/v1")}, Backends: []model.Backend{backend("catalog", 80, 1)},
						Filters: model.Filters{Rewrite: &model.URLRewrite{Path: &model.PathRewrite{PrefixMatch: ptr("/v2")}}}},
					{Matches: []model.RouteMatch{prefix("/legacy")}, Backends: []model.Backend{backend("catalog", 80, 1)},
						Filters: model.Filters{Rewrite: &model.URLRewrite{Hostname: "legacy.internal", Path: &model.PathRewrite{FullPath: ptr("/index.html")}}}},
					{Backends: []model.Backend{backend("catalog", 80, 1)}, Filters: model.Filters{
						RequestHeaders: &model.HeaderModifier{
							Set:    []model.Header{{Name: "x-env", Value: "prod"}},
							Add:    []model.Header{{Name: "x-trace", Value: "on"}},
							Remove: []string{"x-debug"},
						},
						ResponseHeaders: &model.HeaderModifier{Set: []model.Header{{Name: "cache-control", Value: "no-store"}}, Remove: []string{"server"}},
						Mirrors: []model.Mirror{
							{Backend: backend("shadow", 80, 0), PerMillion: 500000},
							{Backend: backend("missing", 80, 0), PerMillion: 1000000},
						},
					}},
				},
			}},
			Workloads: []*model.Workload{client(), server("catalog-1", "catalog", "10.0.0.2", nil)},
		})
	}},
	// The route's own retry and timeouts beat policies; a rule policy
	// beats a route policy, which beats the Service's.
	"retries": {node: "web-1", state: func() *model.State {
		svcTimeout, routeTimeout := 3*time.Second, 7*time.Second
		return state(&model.State{
			Services: []*model.Service{svc("catalog", map[string]string{"app": "catalog"}, httpPort(80, 8080))},
			Routes: []*model.HTTPRoute{{
				Kind: "HTTPRoute", Name: "catalog", Namespace: "shop", Created: day, Parents: parent("catalog"),
				Rules: []model.RouteRule{
					{Name: "own", Matches: []model.RouteMatch{prefix("/own")}, Backends: []model.Backend{backend("catalog", 80, 1)},
						Timeout: 2 * time.Second, BackendTimeout: 200 * time.Millisecond,
						Retry: &model.Retry{Attempts: 1, On: []string{"5xx"}, NonIdempotent: true, MaxBodyBytes: 1 << 20}},
					{Name: "checkout", Matches: []model.RouteMatch{prefix("/checkout")}, Backends: []model.Backend{backend("catalog", 80, 1)}},
					{Name: "rest", Backends: []model.Backend{backend("catalog", 80, 1)}},
				},
			}},
			TrafficPolicies: []*model.TrafficPolicy{
				{Name: "service", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "Service", Name: "catalog", Namespace: "shop"},
					Timeout: &svcTimeout, Retry: &model.Retry{Attempts: 5, On: []string{"gateway-error"}, PerTryTimeout: time.Second}},
				{Name: "route", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "HTTPRoute", Name: "catalog", Namespace: "shop"},
					Timeout: &routeTimeout},
				{Name: "checkout-new", Namespace: "shop", Created: day.Add(time.Hour), Target: model.PolicyTarget{Kind: "HTTPRoute", Name: "catalog", Namespace: "shop", SectionName: "checkout"},
					Retry: &model.Retry{Attempts: 9}},
				{Name: "checkout-old", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "HTTPRoute", Name: "catalog", Namespace: "shop", SectionName: "checkout"},
					Retry: &model.Retry{Attempts: 3, On: []string{"reset", "retriable-status-codes"}, Codes: []uint32{502, 503}, BackoffBase: 100 * time.Millisecond}},
			},
			Workloads: []*model.Workload{client(), server("catalog-1", "catalog", "10.0.0.2", nil)},
		})
	}},
	// Cluster-level policies, faults and a policy without a target.
	"trafficpolicy": {node: "web-1", state: func() *model.State {
		return state(&model.State{
			Services: []*model.Service{
				svc("cart", map[string]string{"app": "cart"}, httpPort(80, 8080)),
				svc("catalog", map[string]string{"app": "catalog"}, httpPort(80, 8080)),
				svc("search", map[string]string{"app": "search"}, httpPort(80, 8080),
					model.ServicePort{Name: "grpc", Port: 9090, TargetPort: 9090, Protocol: "GRPC"}),
			},
			TrafficPolicies: []*model.TrafficPolicy{
				{Name: "cart", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "Service", Name: "cart", Namespace: "shop"},
					LBType: model.LBRingHash, Hash: &model.HashOn{Cookie: "session", CookieTTL: time.Hour},
					Pool:    &model.ConnectionPool{MaxConnections: 100, MaxPendingRequests: 10, MaxRequests: 200, MaxRetries: 4, ConnectTimeout: time.Second, IdleTimeout: time.Minute},
					Outlier: &model.OutlierDetection{Consecutive5xx: 0, ConsecutiveGatewayErrors: 3, Interval: 5 * time.Second, BaseEjectionTime: time.Minute, MaxEjectionPercent: 50},
					Budget:  &model.RetryBudget{Percent: 25, MinPerSecond: 5},
					Fault:   &model.Fault{Delay: 100 * time.Millisecond, DelayPerMillion: 100000, AbortStatus: 503, AbortPerMillion: 10000}},
				{Name: "catalog", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "Service", Name: "catalog", Namespace: "shop"},
					LBType: model.LBLeastRequest, NoLocality: true},
				{Name: "search-grpc", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "Service", Name: "search", Namespace: "shop", SectionName: "grpc"},
					LBType: model.LBRingHash, Hash: &model.HashOn{Header: "X-User"}, Fault: &model.Fault{AbortGRPC: "UNAVAILABLE", AbortPerMillion: 1000000}},
				{Name: "search", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "Service", Name: "search", Namespace: "shop"},
					LBType: model.LBRandom},
				{Name: "orphan", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "Service", Name: "gone", Namespace: "shop"},
					LBType: model.LBRandom},
				{Name: "orphan-port", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "Service", Name: "cart", Namespace: "shop", Port: 81},
					LBType: model.LBRandom},
			},
			Workloads: []*model.Workload{client(),
				server("cart-1", "cart", "10.0.0.2", map[string]string{"topology.kubernetes.io/zone": "a"}),
				server("catalog-1", "catalog", "10.0.0.3", map[string]string{"topology.kubernetes.io/zone": "a"}),
				server("catalog-2", "catalog", "10.0.0.4", map[string]string{"topology.kubernetes.io/zone": "b"}),
			},
		})
	}},
	// A GRPCRoute matches only gRPC requests.
	"grpcroute": {node: "web-1", state: func() *model.State {
		return state(&model.State{
			Services: []*model.Service{
				svc("reviews", map[string]string{"app": "reviews"}, model.ServicePort{Name: "grpc", Port: 9090, TargetPort: 9090, Protocol: "GRPC"}),
				svc("reviews-v2", map[string]string{"app": "reviews", "version": "v2"}, model.ServicePort{Name: "grpc", Port: 9090, TargetPort: 9090, Protocol: "GRPC"}),
			},
			Routes: []*model.HTTPRoute{{
				Kind: "GRPCRoute", Name: "reviews", Namespace: "shop", Created: day, Parents: parent("reviews"),
				Rules: []model.RouteRule{
					{Matches: []model.RouteMatch{{PathType: model.PathExact, Path: "/shop.Reviews/Get", GRPC: &model.GRPCMethodMatch{Service: "shop.Reviews", Method: "Get"}}},
						Backends: []model.Backend{backend("reviews-v2", 9090, 1)}},
					{Backends: []model.Backend{backend("reviews", 9090, 1)}},
				},
			}},
			Workloads: []*model.Workload{client(), server("reviews-1", "reviews", "10.0.0.2", map[string]string{"version": "v2"},
				model.InboundPort{Port: 15007, AppPort: 9090, Protocol: "GRPC"})},
		})
	}},
	// TCP ports get unbound listeners; a TCPRoute splits by weight.
	"tcproute": {node: "web-1", state: func() *model.State {
		tcp := func(name string) *model.Service {
			return svc(name, map[string]string{"app": name}, model.ServicePort{Name: "pg", Port: 5432, TargetPort: 5432, Protocol: "TCP"})
		}
		return state(&model.State{
			Services: []*model.Service{tcp("db"), tcp("db-blue"), tcp("db-green"), tcp("cache")},
			TCPRoutes: []*model.TCPRoute{
				{Name: "db-split", Namespace: "shop", Created: day, Parents: parent("db"), Backends: []model.Backend{
					backend("db-blue", 5432, 80), backend("db-green", 5432, 20), backend("db-red", 5432, 10), backend("db", 5432, 0)}},
				{Name: "db-newer", Namespace: "shop", Created: day.Add(time.Hour), Parents: parent("db"), Backends: []model.Backend{backend("db", 5432, 1)}},
				{Name: "cache-move", Namespace: "shop", Created: day, Parents: parent("cache"), Backends: []model.Backend{backend("db-blue", 5432, 1)}},
				{Name: "nowhere", Namespace: "shop", Created: day, Parents: parent("gone"), Backends: []model.Backend{backend("db", 5432, 1)}},
			},
			Workloads: []*model.Workload{client(), server("db-blue-1", "db-blue", "10.0.0.2", nil, model.InboundPort{Port: 15010, AppPort: 5432, Protocol: "TCP"})},
		})
	}},
	// Inbound rate limits: the whole port (Service policy) and one rule
	// (route policy), on the server's proxy.
	"ratelimit": {node: "catalog-1", state: func() *model.State {
		return state(&model.State{
			Services: []*model.Service{
				svc("catalog", map[string]string{"app": "catalog"}, httpPort(80, 8080)),
				svc("admin", map[string]string{"app": "catalog"}, model.ServicePort{Name: "admin", Port: 81, TargetPort: 9000, Protocol: "HTTP"}),
			},
			Routes: []*model.HTTPRoute{{
				Kind: "HTTPRoute", Name: "catalog", Namespace: "shop", Created: day, Parents: parent("catalog"),
				Rules: []model.RouteRule{
					{Name: "search", Matches: []model.RouteMatch{prefix("/search"), {PathType: model.PathExact, Path: "/find", Method: "GET"}},
						Backends: []model.Backend{backend("catalog", 80, 1)}},
					{Name: "rest", Backends: []model.Backend{backend("catalog", 80, 1)}},
				},
			}},
			TrafficPolicies: []*model.TrafficPolicy{
				{Name: "catalog", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "Service", Name: "catalog", Namespace: "shop"},
					RateLimit: &model.RateLimit{RequestsPerSecond: 100, Burst: 50}},
				{Name: "search", Namespace: "shop", Created: day, Target: model.PolicyTarget{Kind: "HTTPRoute", Name: "catalog", Namespace: "shop", SectionName: "search"},
					RateLimit: &model.RateLimit{RequestsPerSecond: 3, Burst: 5}},
			},
			Workloads: []*model.Workload{client(), server("catalog-1", "catalog", "10.0.0.2", nil,
				model.InboundPort{Port: 15006, AppPort: 8080, Protocol: "HTTP"}, model.InboundPort{Port: 15009, AppPort: 9000, Protocol: "HTTP"})},
		})
	}},
	// Endpoints grouped by locality, in a deterministic order.
	"locality": {node: "web-1", state: func() *model.State {
		loc := func(region, zone, subzone string) map[string]string {
			l := map[string]string{}
			for k, v := range map[string]string{"topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone, "topology.istio.io/subzone": subzone} {
				if v != "" {
					l[k] = v
				}
			}
			return l
		}
		return state(&model.State{
			Services: []*model.Service{svc("catalog", map[string]string{"app": "catalog"}, httpPort(80, 8080))},
			Workloads: []*model.Workload{client(),
				server("catalog-1", "catalog", "10.0.0.2", loc("eu-west", "b", "")),
				server("catalog-2", "catalog", "10.0.0.3", loc("eu-west", "a", "rack1")),
				server("catalog-3", "catalog", "10.0.0.4", loc("eu-west", "a", "")),
				server("catalog-4", "catalog", "10.0.0.5", nil),
				server("catalog-5", "catalog", "10.0.0.6", loc("eu-west", "b", "")),
				server("catalog-6", "catalog", "10.0.0.7", loc("us-east", "a", "")),
			},
		})
	}},
}

// TestGoldenStates checks the traffic-management cases built from a State.
func TestGoldenStates(t *testing.T) {
	for name, c := range stateCases {
		t.Run(name, func(t *testing.T) {
			checkGolden(t, filepath.Join("testdata", name), c.state(), c.node)
		})
	}
}

// TestGoldenDirs makes sure no testdata case is left unchecked.
func TestGoldenDirs(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/*")
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "resources.yaml")); err == nil {
			continue
		}
		if _, ok := stateCases[filepath.Base(dir)]; !ok {
			t.Errorf("%s has neither resources.yaml nor a case in stateCases", dir)
		}
	}
}

// TestSnapshotConsistent checks that the resources of every node make a
// consistent go-control-plane snapshot (every RDS and EDS name referred to
// is there, and nothing else) — also for a node without an outbound
// listener of its own, which gets it unbound.
func TestSnapshotConsistent(t *testing.T) {
	for name, c := range stateCases {
		st := c.state()
		gen := xdsconfig.NewGeneration(st)
		for _, w := range st.Workloads {
			snap, err := cachev3.NewSnapshot("1", gen.ForNode(w))
			if err != nil {
				t.Fatalf("%s/%s: %v", name, w.Name, err)
			}
			if err := snap.Consistent(); err != nil {
				t.Errorf("%s/%s: %v", name, w.Name, err)
			}
		}
	}
}
