package authz

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	x "github.com/weftmesh/weft/proxy/xdsresource"
)

// authServer is a real envoy.service.auth.v3 server: it allows requests
// whose x-user header is "alice", and records the last request.
type authServer struct {
	authv3.UnimplementedAuthorizationServer
	last  atomic.Pointer[authv3.CheckRequest]
	delay time.Duration
	fail  bool
}

func (s *authServer) Check(ctx context.Context, r *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.last.Store(r)
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.fail {
		return nil, grpcstatus.Error(codes.Unavailable, "backend down")
	}
	h := r.GetAttributes().GetRequest().GetHttp()
	if h.GetHeaders()["x-user"] == "alice" {
		return &authv3.CheckResponse{
			Status: &status.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-authz-user", Value: "alice"}}},
			}},
		}, nil
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-why", Value: "who are you"}}},
			Body:    "no",
		}},
	}, nil
}

func startAuthServer(t *testing.T, s *authServer) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, s)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

func dialer(addrs map[string]string) func(ctx context.Context, cluster string) (net.Conn, error) {
	return func(ctx context.Context, cluster string) (net.Conn, error) {
		a, ok := addrs[cluster]
		if !ok {
			return nil, errors.New("no endpoint for " + cluster)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", a)
	}
}

func authzRequest(user string) *Request {
	r := get("/api/items")
	r.Query = "page=2"
	r.Header.Set("X-User", user)
	r.PeerID = fooSA
	r.DestIP = netip.MustParseAddr("10.0.0.9")
	r.Scheme, r.Protocol, r.ID = "http", "HTTP/1.1", "req-1"
	return r
}

func TestExtAuthzClient(t *testing.T) {
	srv := &authServer{}
	addr := startAuthServer(t, srv)
	client := NewExtAuthzClient(dialer(map[string]string{"weft-authz|opa": addr}))
	ctx := context.Background()

	d, err := client(ctx, "weft-authz|opa", authzRequest("alice"))
	if err != nil || !d.Allowed || d.Headers.Get("X-Authz-User") != "alice" {
		t.Fatalf("alice: %+v %v", d, err)
	}
	got := srv.last.Load().GetAttributes()
	h := got.GetRequest().GetHttp()
	if h.GetMethod() != "GET" || h.GetPath() != "/api/items?page=2" || h.GetHost() != "svc.ns" || h.GetQuery() != "page=2" ||
		h.GetScheme() != "http" || h.GetProtocol() != "HTTP/1.1" || h.GetId() != "req-1" || h.GetHeaders()[":method"] != "GET" {
		t.Fatalf("request attributes: %v", h)
	}
	if got.GetSource().GetPrincipal() != fooSA || got.GetSource().GetAddress().GetSocketAddress().GetAddress() != "10.0.0.1" ||
		got.GetDestination().GetAddress().GetSocketAddress().GetPortValue() != 8080 {
		t.Fatalf("peers: %v / %v", got.GetSource(), got.GetDestination())
	}

	d, err = client(ctx, "weft-authz|opa", authzRequest("mallory"))
	if err != nil || d.Allowed || d.Status != 401 || d.DeniedBody != "no" || d.DeniedHeaders.Get("X-Why") != "who are you" {
		t.Fatalf("mallory: %+v %v", d, err)
	}
	if _, err := client(ctx, "weft-authz|none", authzRequest("alice")); err == nil {
		t.Fatal("unreachable cluster: no error")
	}
}

func TestExtAuthzFailureModes(t *testing.T) {
	ok := startAuthServer(t, &authServer{})
	slow := startAuthServer(t, &authServer{delay: time.Second})
	failing := startAuthServer(t, &authServer{fail: true})
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := lis.Addr().String()
	lis.Close()
	client := NewExtAuthzClient(dialer(map[string]string{"ok": ok, "slow": slow, "failing": failing, "closed": closed}))
	tests := []struct {
		cluster   string
		allowMode bool
		user      string
		allow     bool
		status    int
	}{
		{"ok", false, "alice", true, 0},
		{"ok", true, "mallory", false, 401}, // a denial is a denial, whatever the failure mode
		{"slow", false, "alice", false, 403},
		{"slow", true, "alice", true, 0},
		{"failing", false, "alice", false, 503},
		{"failing", true, "alice", true, 0},
		{"closed", false, "alice", false, 503},
		{"closed", true, "alice", true, 0},
	}
	for _, tt := range tests {
		name := tt.cluster + map[bool]string{true: "/allow", false: "/closed"}[tt.allowMode]
		t.Run(name, func(t *testing.T) {
			soe := 403
			if tt.cluster != "slow" {
				soe = 503
			}
			e := mustCompile(t, &x.AuthzFilters{ExtAuthz: []x.ExtAuthz{
				{Cluster: tt.cluster, Timeout: 100 * time.Millisecond, FailureModeAllow: tt.allowMode, StatusOnError: soe},
			}}, Options{ExtAuthz: client})
			start := time.Now()
			d := e.Check(context.Background(), authzRequest(tt.user))
			if d.Allowed != tt.allow || (!tt.allow && d.Status != tt.status) {
				t.Fatalf("got %+v, want allowed=%v status=%d", d, tt.allow, tt.status)
			}
			if time.Since(start) > 900*time.Millisecond {
				t.Fatal("timeout not applied")
			}
			if tt.allow && tt.user == "alice" && tt.cluster == "ok" && d.Headers.Get("X-Authz-User") != "alice" {
				t.Fatalf("ok headers not passed: %+v", d)
			}
		})
	}
}

// TestCustomGate: the ext_authz filter is asked only when the preceding
// RBAC filter's shadow rules matched a CUSTOM policy.
func TestCustomGate(t *testing.T) {
	var asked atomic.Int32
	f := &x.AuthzFilters{
		RBAC: []x.HTTPRBAC{{
			ShadowRules: &x.RBAC{Action: x.RBACAllow, Policies: []x.RBACPolicy{
				pol("weft-ext-authz/ns/custom", []x.Permission{path(prefix("/secure/"))}, []x.Principal{anyPrin()}),
			}},
			ShadowStatPrefix: "weft_ext_authz_",
		}, rules(x.RBACDeny, pol("ns/deny", []x.Permission{path(exact("/secure/never"))}, []x.Principal{anyPrin()}))},
		ExtAuthz: []x.ExtAuthz{{Cluster: "weft-authz|opa", Timeout: time.Second, EnabledByShadow: "weft-ext-authz/"}},
		Order:    []string{x.FilterRBAC, x.FilterExtAuthz, x.FilterRBAC},
	}
	e := mustCompile(t, f, Options{ExtAuthz: func(ctx context.Context, cluster string, r *Request) (Decision, error) {
		asked.Add(1)
		if r.Header.Get("X-User") == "alice" {
			return Decision{Allowed: true, Headers: http.Header{"X-Ok": {"1"}}}, nil
		}
		return Decision{Status: 403}, nil
	}})
	check := func(p, user string) Decision {
		r := get(p)
		r.Header.Set("X-User", user)
		return e.Check(context.Background(), r)
	}
	if d := check("/public", "mallory"); !d.Allowed || asked.Load() != 0 {
		t.Fatalf("ungated path asked the authorizer: %+v", d)
	}
	if d := check("/secure/x", "mallory"); d.Allowed || asked.Load() != 1 || d.Policy != "weft-authz|opa" {
		t.Fatalf("gated path: %+v", d)
	}
	if d := check("/secure/x", "alice"); !d.Allowed || d.Headers.Get("X-Ok") != "1" {
		t.Fatalf("alice: %+v", d)
	}
	if d := check("/secure/never", "alice"); d.Allowed || d.Policy != "ns/deny" {
		t.Fatalf("DENY after CUSTOM: %+v", d)
	}
}
