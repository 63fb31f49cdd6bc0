package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/proxy"
)

func addr(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func splitPort(t *testing.T, a string) (string, uint32) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		t.Fatal(err)
	}
	var n uint32
	fmt.Sscan(p, &n)
	return h, n
}

// resources builds an outbound listener at lis routing host "svc.test" to
// a static cluster of one endpoint (backend). clusterType lets a test send
// a cluster the proxy cannot honour.
func resources(t *testing.T, lis, backend string, clusterType clusterv3.Cluster_DiscoveryType) map[resource.Type][]types.Resource {
	lh, lp := splitPort(t, lis)
	bh, bp := splitPort(t, backend)
	router, _ := anypb.New(&routerv3.Router{})
	hcm, _ := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix:     "outbound",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "outbound", ConfigSource: &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	return map[resource.Type][]types.Resource{
		resource.ListenerType: {&listenerv3.Listener{Name: "outbound", Address: addr(lh, lp),
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}}}},
		resource.RouteType: {&routev3.RouteConfiguration{Name: "outbound", VirtualHosts: []*routev3.VirtualHost{{
			Name: "svc", Domains: []string{"svc.test"},
			Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "backend"}}}}},
		}}}},
		resource.ClusterType: {&clusterv3.Cluster{Name: "backend", ConnectTimeout: durationpb.New(time.Second),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterType},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "backend", Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr(bh, bp)}}}}}}}}},
		resource.EndpointType: {},
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestNACKKeepsLastGoodConfig: a response the proxy cannot honour is
// NACKed with the reason, and traffic keeps flowing on the last good
// config; the next good response is applied.
func TestNACKKeepsLastGoodConfig(t *testing.T) {
	backend := func(name string) string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	b1, b2 := backend("one"), backend("two")

	var mu sync.Mutex
	var nacks []string
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	srv := serverv3.NewServer(context.Background(), cache, serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, req *discoverygrpc.DiscoveryRequest) error {
			if d := req.GetErrorDetail(); d != nil {
				mu.Lock()
				nacks = append(nacks, d.GetMessage())
				mu.Unlock()
			}
			return nil
		},
	})
	pki := newTestPKI(t)
	issuerAddr := pki.serveIssuer(t)
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.serverTLS())))
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(g.Stop)

	lis := freeAddr(t)
	set := func(version string, res map[resource.Type][]types.Resource) {
		snap, err := cachev3.NewSnapshot(version, res)
		if err != nil {
			t.Fatal(err)
		}
		if err := cache.SetSnapshot(context.Background(), "w-1.ns", snap); err != nil {
			t.Fatal(err)
		}
	}
	set("1", resources(t, lis, b1, clusterv3.Cluster_STATIC))

	p, err := proxy.New(proxy.Options{ControlPlane: ln.Addr().String(), Workload: "w-1", Namespace: "ns",
		TrustDomain: "weft.local", Identity: "w", Token: "weft1.test", CAPin: pki.pin(), Issuer: issuerAddr})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-p.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not ready")
	}
	get := func() (string, error) {
		req, _ := http.NewRequest("GET", "http://"+lis+"/", nil)
		req.Host = "svc.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	if body, err := get(); err != nil || body != "one" {
		t.Fatalf("first config: %q %v", body, err)
	}

	// A LOGICAL_DNS cluster is something this proxy cannot honour.
	set("2", resources(t, lis, b2, clusterv3.Cluster_LOGICAL_DNS))
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(nacks)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no NACK for an invalid cluster")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	msg := nacks[0]
	mu.Unlock()
	if !strings.Contains(msg, "backend") {
		t.Fatalf("NACK does not name the resource: %q", msg)
	}
	for range 20 {
		if body, err := get(); err != nil || body != "one" {
			t.Fatalf("after NACK the last good config must serve: %q %v", body, err)
		}
	}

	set("3", resources(t, lis, b2, clusterv3.Cluster_STATIC))
	deadline = time.Now().Add(10 * time.Second)
	for {
		if body, _ := get(); body == "two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the next good config was not applied")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
