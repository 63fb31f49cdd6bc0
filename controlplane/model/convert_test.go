package model_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/controlplane/model"
)

func state(t *testing.T, y string) *model.State {
	t.Helper()
	objs, err := resource.DecodeYAML("test", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := resource.Validate(o); err != nil {
			t.Fatal(err)
		}
	}
	st, err := model.FromObjects(objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func str(s string) *string { return &s }

func TestHTTPRouteTraffic(t *testing.T) {
	st := state(t, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: web, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, port: 8443, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  - name: api
    matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - {type: URLRewrite, urlRewrite: {hostname: api.internal, path: {type: ReplaceFullPath, replaceFullPath: /v2}}}
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Route, value: api}], remove: [X-Secret]}}
    - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: X-Served-By, value: weft}]}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 81}, percent: 5}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 82}, fraction: {numerator: 1, denominator: 3}}}
    retry: {attempts: 3, backoff: 100ms}
    timeouts: {request: 10s, backendRequest: 2s}
    backendRefs: [{name: web-v1, port: 80}]
  - retry: {codes: [500, 502]}
    backendRefs: [{name: web-v1, port: 80}]
`)
	if len(st.Routes) != 1 || st.Routes[0].Kind != "HTTPRoute" {
		t.Fatalf("routes: %+v", st.Routes)
	}
	rules := st.Routes[0].Rules
	want0 := model.Filters{Redirect: &model.Redirect{Scheme: "https", Port: 8443, StatusCode: 302,
		Path: &model.PathRewrite{PrefixMatch: str("/new")}}}
	if !reflect.DeepEqual(rules[0].Filters, want0) || len(rules[0].Backends) != 0 {
		t.Errorf("redirect rule: %+v", rules[0])
	}
	want1 := model.Filters{
		RequestHeaders:  &model.HeaderModifier{Set: []model.Header{{Name: "x-route", Value: "api"}}, Remove: []string{"x-secret"}},
		ResponseHeaders: &model.HeaderModifier{Add: []model.Header{{Name: "x-served-by", Value: "weft"}}},
		Rewrite:         &model.URLRewrite{Hostname: "api.internal", Path: &model.PathRewrite{FullPath: str("/v2")}},
		Mirrors: []model.Mirror{
			{Backend: model.Backend{Service: "shadow", Namespace: "shop", Port: 80}, PerMillion: 1000000},
			{Backend: model.Backend{Service: "shadow", Namespace: "shop", Port: 81}, PerMillion: 50000},
			{Backend: model.Backend{Service: "shadow", Namespace: "shop", Port: 82}, PerMillion: 333333},
		},
	}
	if !reflect.DeepEqual(rules[1].Filters, want1) {
		t.Errorf("filters:\n got %+v\nwant %+v", rules[1].Filters, want1)
	}
	wantRetry := &model.Retry{Attempts: 3, On: []string{"connect-failure", "refused-stream", "reset", "retriable-status-codes"},
		Codes: []uint32{503}, BackoffBase: 100 * time.Millisecond, PerTryTimeout: 2 * time.Second, MaxBodyBytes: 65536}
	if !reflect.DeepEqual(rules[1].Retry, wantRetry) || rules[1].Timeout != 10*time.Second || rules[1].BackendTimeout != 2*time.Second || rules[1].Name != "api" {
		t.Errorf("retry/timeouts: %+v %v %v", rules[1].Retry, rules[1].Timeout, rules[1].BackendTimeout)
	}
	if r := rules[2].Retry; r.Attempts != 2 || !reflect.DeepEqual(r.Codes, []uint32{500, 502}) {
		t.Errorf("retry defaults: %+v", r)
	}
}

func TestGRPCRoute(t *testing.T) {
	st := state(t, `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: interop, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: interop, port: 9090}]
  rules:
  - matches:
    - method: {service: grpc.testing.TestService, method: UnaryCall}
      headers: [{name: X-User, value: alice}]
    - method: {service: grpc.testing.TestService}
    - method: {method: EmptyCall}
    - method: {type: RegularExpression, service: "grpc\\..*"}
    - headers: [{name: x-any, type: RegularExpression, value: "a.*"}]
    filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-A, value: b}]}}
    backendRefs: [{name: interop-v2, port: 9090, weight: 10}]
  - backendRefs: [{name: interop, port: 9090}]
`)
	r := st.Routes[0]
	if r.Kind != "GRPCRoute" || len(r.Rules) != 2 {
		t.Fatalf("route: %+v", r)
	}
	want := []model.RouteMatch{
		{PathType: model.PathExact, Path: "/grpc.testing.TestService/UnaryCall", Headers: []model.StringMatch{{Name: "x-user", Value: "alice"}},
			GRPC: &model.GRPCMethodMatch{Service: "grpc.testing.TestService", Method: "UnaryCall"}},
		{PathType: model.PathRegex, Path: `/grpc\.testing\.TestService/[^/]+`, GRPC: &model.GRPCMethodMatch{Service: "grpc.testing.TestService"}},
		{PathType: model.PathRegex, Path: `/[^/]+/EmptyCall`, GRPC: &model.GRPCMethodMatch{Method: "EmptyCall"}},
		{PathType: model.PathRegex, Path: `/(grpc\..*)/([^/]+)`, GRPC: &model.GRPCMethodMatch{Service: `grpc\..*`, Regex: true}},
		{PathType: model.PathPrefix, Path: "/", Headers: []model.StringMatch{{Name: "x-any", Value: "a.*", Regex: true}}, GRPC: &model.GRPCMethodMatch{}},
	}
	if !reflect.DeepEqual(r.Rules[0].Matches, want) {
		t.Errorf("matches:\n got %+v\nwant %+v", r.Rules[0].Matches, want)
	}
	if m := r.Rules[1].Matches; len(m) != 1 || m[0].GRPC == nil || m[0].Path != "/" {
		t.Errorf("rule without matches must match every gRPC request: %+v", m)
	}
	if b := r.Rules[0].Backends; len(b) != 1 || b[0].Weight != 10 || r.Rules[0].Filters.RequestHeaders.Add[0].Name != "x-a" {
		t.Errorf("rule: %+v", r.Rules[0])
	}
}

func TestTCPRoute(t *testing.T) {
	st := state(t, `apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: db, sectionName: pg}]
  rules:
  - backendRefs: [{name: db-a, port: 5432, weight: 80}, {name: db-b, port: 5432}]
`)
	want := &model.TCPRoute{Name: "db", Namespace: "shop",
		Parents:  []model.ParentRef{{Service: "db", Namespace: "shop", SectionName: "pg"}},
		Backends: []model.Backend{{Service: "db-a", Namespace: "shop", Port: 5432, Weight: 80}, {Service: "db-b", Namespace: "shop", Port: 5432, Weight: 1}}}
	if len(st.TCPRoutes) != 1 || !reflect.DeepEqual(st.TCPRoutes[0], want) {
		t.Errorf("got %+v", st.TCPRoutes)
	}
}

func TestTrafficPolicy(t *testing.T) {
	st := state(t, `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: full, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog, port: 80}
  loadBalancer: {type: RING_HASH, hash: {cookie: {name: session, ttl: 1h}}, localityAware: false}
  connectionPool: {maxConnections: 10, maxRequests: 20, connectTimeout: 1s}
  outlierDetection: {consecutive5xxErrors: 0, interval: 1s}
  retries: {attempts: 3, retryOn: [5xx], retriableStatusCodes: [503, 504], backoff: {baseInterval: 10ms, maxInterval: 100ms}, budget: {percent: 12.5}, maxBodyBytes: 1024}
  timeouts: {request: 0s}
  rateLimit: {requestsPerSecond: 100}
  faults: {delay: {fixedDelay: 2s, percent: 0.5}, abort: {grpcStatus: UNAVAILABLE}}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: budget-only, namespace: shop}
spec:
  targetRef: {kind: HTTPRoute, name: web, sectionName: api}
  retries: {perTryTimeout: 1s}
  faults: {abort: {httpStatus: 503, percent: 5}}
`)
	if len(st.TrafficPolicies) != 2 {
		t.Fatalf("%d policies", len(st.TrafficPolicies))
	}
	route, full := st.TrafficPolicies[0], st.TrafficPolicies[1]
	zero := time.Duration(0)
	want := &model.TrafficPolicy{Name: "full", Namespace: "shop",
		Target:     model.PolicyTarget{Kind: "Service", Name: "catalog", Namespace: "shop", Port: 80},
		LBType:     "RING_HASH",
		Hash:       &model.HashOn{Cookie: "session", CookieTTL: time.Hour},
		NoLocality: true,
		Pool:       &model.ConnectionPool{MaxConnections: 10, MaxRequests: 20, ConnectTimeout: time.Second},
		Outlier: &model.OutlierDetection{Consecutive5xx: 0, Interval: time.Second, BaseEjectionTime: 30 * time.Second,
			MaxEjectionPercent: 10},
		Retry: &model.Retry{Attempts: 3, On: []string{"5xx", "retriable-status-codes"}, Codes: []uint32{503, 504},
			BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, MaxBodyBytes: 1024},
		Budget:    &model.RetryBudget{Percent: 12.5, MinPerSecond: 10},
		Timeout:   &zero,
		RateLimit: &model.RateLimit{RequestsPerSecond: 100, Burst: 100},
		Fault:     &model.Fault{Delay: 2 * time.Second, DelayPerMillion: 5000, AbortGRPC: "UNAVAILABLE", AbortPerMillion: 1000000},
	}
	if !reflect.DeepEqual(full, want) {
		t.Errorf("policy:\n got %+v\nwant %+v", full, want)
	}
	wantRetry := &model.Retry{Attempts: 2, On: model.DefaultRetryOn, Codes: []uint32{503}, PerTryTimeout: time.Second, MaxBodyBytes: 65536}
	if !reflect.DeepEqual(route.Retry, wantRetry) || route.Fault.AbortStatus != 503 || route.Fault.AbortPerMillion != 50000 ||
		route.Target != (model.PolicyTarget{Kind: "HTTPRoute", Name: "web", Namespace: "shop", SectionName: "api"}) {
		t.Errorf("route policy: %+v %+v", route, route.Retry)
	}
}

func TestBudgetAloneSetsNoRetry(t *testing.T) {
	st := state(t, `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: b, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  retries: {budget: {}}
`)
	p := st.TrafficPolicies[0]
	if p.Retry != nil || p.Budget == nil || *p.Budget != (model.RetryBudget{Percent: 20, MinPerSecond: 10}) {
		t.Errorf("got retry %+v budget %+v", p.Retry, p.Budget)
	}
}

func TestMeshFrom(t *testing.T) {
	objs, err := resource.DecodeYAML("t", []byte(`apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  tracing:
    otlp: {endpoint: "127.0.0.1:4318", protocol: http}
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := model.FromObjects(objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := model.Tracing{SampleRate: 1, Endpoint: "127.0.0.1:4318", Protocol: model.OTLPHTTP, Path: "/v1/traces"}
	if st.Mesh.Tracing == nil || *st.Mesh.Tracing != want {
		t.Errorf("tracing = %+v, want %+v", st.Mesh.Tracing, want)
	}
	if st, _ := model.FromObjects(nil, nil); st.Mesh.Tracing != nil {
		t.Error("tracing on without a MeshConfig")
	}
}
