package xdsclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointpb "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerpb "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/proxy/xdsclient"
)

const (
	typeCDS = resource.ClusterType
	typeEDS = resource.EndpointType
	typeLDS = resource.ListenerType
	typeRDS = resource.RouteType

	nodeID      = "cart-1.shop"
	waitTimeout = 5 * time.Second
)

var allTypes = []string{typeCDS, typeEDS, typeLDS, typeRDS}

// controlPlane is a go-control-plane ADS server on a real TCP port that
// records what it receives and sends.
type controlPlane struct {
	addr  string
	cache cachev3.SnapshotCache
	srv   *grpc.Server

	mu        sync.Mutex
	requests  []*discoverypb.DiscoveryRequest  // as OnStreamRequest saw them
	wire      []wireRequest                    // as decoded off the wire
	responses []*discoverypb.DiscoveryResponse // as OnStreamResponse saw them
	streams   int
}

// wireRequest is a request as it arrived, before the ADS server fills in
// the node of the stream.
type wireRequest struct {
	stream int
	req    *discoverypb.DiscoveryRequest
}

// startControlPlane serves an ADS server on addr ("127.0.0.1:0" for any
// port) backed by a snapshot cache holding snap for nodeID. opts are added
// to the gRPC server's options.
func startControlPlane(t *testing.T, addr string, snap *cachev3.Snapshot, opts ...grpc.ServerOption) *controlPlane {
	t.Helper()
	cp := &controlPlane{cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)}
	if snap != nil {
		cp.setSnapshot(t, snap)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cbs := serverv3.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			cp.streams++
			return nil
		},
		StreamRequestFunc: func(_ int64, req *discoverypb.DiscoveryRequest) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			cp.requests = append(cp.requests, proto.Clone(req).(*discoverypb.DiscoveryRequest))
			return nil
		},
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoverypb.DiscoveryRequest, resp *discoverypb.DiscoveryResponse) {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			cp.responses = append(cp.responses, proto.Clone(resp).(*discoverypb.DiscoveryResponse))
		},
	}
	var streamIDs int
	var idMu sync.Mutex
	cp.srv = grpc.NewServer(append([]grpc.ServerOption{
		// The client pings every PingInterval; let it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Millisecond, PermitWithoutStream: true}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			idMu.Lock()
			streamIDs++
			id := streamIDs
			idMu.Unlock()
			return handler(srv, &recordingStream{ServerStream: ss, cp: cp, id: id})
		}),
	}, opts...)...)
	discoverypb.RegisterAggregatedDiscoveryServiceServer(cp.srv, serverv3.NewServer(ctx, cp.cache, cbs))
	ln := listen(t, addr)
	cp.addr = ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = cp.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		cp.srv.Stop()
		cancel()
		<-served
	})
	return cp
}

// listen listens on addr, retrying briefly: a port just released by a
// stopped server may take a moment to become free.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("listen on %s: %v", addr, err)
	return nil
}

type recordingStream struct {
	grpc.ServerStream
	cp *controlPlane
	id int
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if req, ok := m.(*discoverypb.DiscoveryRequest); ok && err == nil {
		s.cp.mu.Lock()
		s.cp.wire = append(s.cp.wire, wireRequest{stream: s.id, req: proto.Clone(req).(*discoverypb.DiscoveryRequest)})
		s.cp.mu.Unlock()
	}
	return err
}

func (cp *controlPlane) setSnapshot(t *testing.T, snap *cachev3.Snapshot) {
	t.Helper()
	if err := cp.cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		t.Fatalf("set snapshot: %v", err)
	}
}

// findRequest returns the first request the callbacks saw that matches.
func (cp *controlPlane) findRequest(match func(*discoverypb.DiscoveryRequest) bool) *discoverypb.DiscoveryRequest {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, r := range cp.requests {
		if match(r) {
			return r
		}
	}
	return nil
}

func (cp *controlPlane) countRequests(match func(*discoverypb.DiscoveryRequest) bool) int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	n := 0
	for _, r := range cp.requests {
		if match(r) {
			n++
		}
	}
	return n
}

// findResponse returns the first response sent that matches.
func (cp *controlPlane) findResponse(match func(*discoverypb.DiscoveryResponse) bool) *discoverypb.DiscoveryResponse {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, r := range cp.responses {
		if match(r) {
			return r
		}
	}
	return nil
}

// snapshot builds a consistent snapshot: listener "outbound" (HCM, RDS
// "outbound"), route "outbound" to cluster "backend" (EDS), and its
// endpoints.
func snapshot(t *testing.T, version string) *cachev3.Snapshot {
	t.Helper()
	ads := &corepb.ConfigSource{
		ResourceApiVersion:    corepb.ApiVersion_V3,
		ConfigSourceSpecifier: &corepb.ConfigSource_Ads{Ads: &corepb.AggregatedConfigSource{}},
	}
	cluster := &clusterpb.Cluster{
		Name:                 "backend",
		ClusterDiscoveryType: &clusterpb.Cluster_Type{Type: clusterpb.Cluster_EDS},
		EdsClusterConfig:     &clusterpb.Cluster_EdsClusterConfig{EdsConfig: ads},
		ConnectTimeout:       durationpb.New(time.Second),
	}
	endpoints := &endpointpb.ClusterLoadAssignment{
		ClusterName: "backend",
		Endpoints: []*endpointpb.LocalityLbEndpoints{{
			LbEndpoints: []*endpointpb.LbEndpoint{{
				HostIdentifier: &endpointpb.LbEndpoint_Endpoint{Endpoint: &endpointpb.Endpoint{Address: socketAddress("10.0.0.1", 8080)}},
			}},
		}},
	}
	route := &routepb.RouteConfiguration{
		Name: "outbound",
		VirtualHosts: []*routepb.VirtualHost{{
			Name:    "backend",
			Domains: []string{"backend.shop"},
			Routes: []*routepb.Route{{
				Match:  &routepb.RouteMatch{PathSpecifier: &routepb.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routepb.Route_Route{Route: &routepb.RouteAction{ClusterSpecifier: &routepb.RouteAction_Cluster{Cluster: "backend"}}},
			}},
		}},
	}
	manager := &hcmpb.HttpConnectionManager{
		StatPrefix: "outbound",
		RouteSpecifier: &hcmpb.HttpConnectionManager_Rds{Rds: &hcmpb.Rds{
			ConfigSource:    ads,
			RouteConfigName: "outbound",
		}},
		HttpFilters: []*hcmpb.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmpb.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerpb.Router{})},
		}},
	}
	listener := &listenerpb.Listener{
		Name:    "outbound",
		Address: socketAddress("127.0.0.1", 15001),
		FilterChains: []*listenerpb.FilterChain{{
			Filters: []*listenerpb.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerpb.Filter_TypedConfig{TypedConfig: mustAny(t, manager)},
			}},
		}},
	}
	snap, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{
		typeCDS: {cluster},
		typeEDS: {endpoints},
		typeLDS: {listener},
		typeRDS: {route},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatalf("inconsistent snapshot: %v", err)
	}
	return snap
}

func socketAddress(ip string, port uint32) *corepb.Address {
	return &corepb.Address{Address: &corepb.Address_SocketAddress{SocketAddress: &corepb.SocketAddress{
		Address:       ip,
		PortSpecifier: &corepb.SocketAddress_PortValue{PortValue: port},
	}}}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// update is one OnResources call.
type update struct {
	typeURL, version string
	names            []string // names of the decoded resources
}

// proxy is a Handler that behaves like the sidecar: it decodes what it
// gets, follows CDS to EDS and LDS to RDS by subscribing from inside the
// handler, and can be told to reject some responses.
type proxy struct {
	client *xdsclient.Client // set before Run starts
	reject func(typeURL, version string) error

	mu      sync.Mutex
	updates []update
}

func (p *proxy) OnResources(typeURL, version string, resources [][]byte) error {
	names, follow, err := inspect(typeURL, resources)
	if err != nil {
		return err
	}
	if p.reject != nil {
		if err := p.reject(typeURL, version); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.updates = append(p.updates, update{typeURL: typeURL, version: version, names: names})
	p.mu.Unlock()
	if follow == nil {
		follow = []string{} // none, not a wildcard
	}
	switch typeURL {
	case typeCDS:
		p.client.Subscribe(typeEDS, follow)
	case typeLDS:
		p.client.Subscribe(typeRDS, follow)
	}
	return nil
}

// latest returns the last accepted update of typeURL.
func (p *proxy) latest(typeURL string) (update, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.updates) - 1; i >= 0; i-- {
		if p.updates[i].typeURL == typeURL {
			return p.updates[i], true
		}
	}
	return update{}, false
}

func (p *proxy) count(typeURL string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, u := range p.updates {
		if u.typeURL == typeURL {
			n++
		}
	}
	return n
}

// hasVersion reports whether the last update of every type is version.
func (p *proxy) hasVersion(version string) bool {
	for _, typeURL := range allTypes {
		if u, ok := p.latest(typeURL); !ok || u.version != version {
			return false
		}
	}
	return true
}

// inspect decodes resources with the generated types, returning their names
// and the names they reference (EDS clusters of a cluster, RDS routes of a
// listener).
func inspect(typeURL string, resources [][]byte) (names, follow []string, err error) {
	for _, b := range resources {
		switch typeURL {
		case typeCDS:
			var c clusterpb.Cluster
			if err := proto.Unmarshal(b, &c); err != nil {
				return nil, nil, err
			}
			names = append(names, c.GetName())
			if c.GetType() == clusterpb.Cluster_EDS {
				follow = append(follow, c.GetName())
			}
		case typeEDS:
			var e endpointpb.ClusterLoadAssignment
			if err := proto.Unmarshal(b, &e); err != nil {
				return nil, nil, err
			}
			names = append(names, e.GetClusterName())
		case typeLDS:
			var l listenerpb.Listener
			if err := proto.Unmarshal(b, &l); err != nil {
				return nil, nil, err
			}
			names = append(names, l.GetName())
			for _, fc := range l.GetFilterChains() {
				for _, f := range fc.GetFilters() {
					var m hcmpb.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
						return nil, nil, err
					}
					if rds := m.GetRds(); rds != nil {
						follow = append(follow, rds.GetRouteConfigName())
					}
				}
			}
		case typeRDS:
			var r routepb.RouteConfiguration
			if err := proto.Unmarshal(b, &r); err != nil {
				return nil, nil, err
			}
			names = append(names, r.GetName())
		default:
			return nil, nil, fmt.Errorf("unexpected type %s", typeURL)
		}
	}
	return names, follow, nil
}

var testMetadata = map[string]any{
	"weft.namespace":     "shop",
	"weft.workload":      "cart-1",
	"weft.labels":        map[string]any{"app": "cart", "version": "v2"},
	"weft.inbound":       []any{map[string]any{"port": 15006.0, "app_port": 8080.0, "protocol": "HTTP"}},
	"weft.outbound":      "127.0.0.1:15001",
	"weft.sidecar":       true,
	"weft.proxy_version": nil,
}

// startClient runs a client of server with fast test timings, subscribed to
// CDS and LDS (wildcard). Run is stopped and awaited at cleanup.
func startClient(t *testing.T, server string, p *proxy, modify ...func(*xdsclient.Options)) *xdsclient.Client {
	t.Helper()
	opts := xdsclient.Options{
		Server: server,
		Node: xdsclient.Node{
			ID:               nodeID,
			Cluster:          "cart",
			Metadata:         testMetadata,
			UserAgentVersion: "0.1.0-test",
		},
		Handler:        p,
		InitialBackoff: 20 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
		PingInterval:   time.Second,
		PingTimeout:    time.Second,
	}
	for _, m := range modify {
		m(&opts)
	}
	c, err := xdsclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.client = c
	c.Subscribe(typeCDS, nil)
	c.Subscribe(typeLDS, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Run did not return after cancel")
		}
	})
	return c
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReceivesAllTypesFollowingSubscriptions(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", snapshot(t, "1"))
	p := &proxy{}
	c := startClient(t, cp.addr, p)

	waitFor(t, "all four types at version 1", func() bool { return p.hasVersion("1") })
	for typeURL, want := range map[string]string{typeCDS: "backend", typeEDS: "backend", typeLDS: "outbound", typeRDS: "outbound"} {
		if u, _ := p.latest(typeURL); !slices.Equal(u.names, []string{want}) {
			t.Errorf("%s: got resources %v, want [%s]", typeURL, u.names, want)
		}
	}

	// The ACKs are recorded once the handler has returned; wait for them.
	waitFor(t, "ACKs in Status", func() bool {
		st := c.Status()
		for _, typeURL := range allTypes {
			if st.Types[typeURL].Version != "1" {
				return false
			}
		}
		return true
	})
	st := c.Status()
	if !st.Connected || st.LastConnected.IsZero() || st.Reconnects != 0 {
		t.Errorf("Status = connected %v, last connected %v, reconnects %d; want connected, set, 0",
			st.Connected, st.LastConnected, st.Reconnects)
	}
	wantNames := map[string][]string{typeCDS: nil, typeLDS: nil, typeEDS: {"backend"}, typeRDS: {"outbound"}}
	for typeURL, want := range wantNames {
		ts := st.Types[typeURL]
		if !slices.Equal(ts.Names, want) || ts.Acks < 1 || ts.Nacks != 0 || ts.NackError != "" {
			t.Errorf("Status.Types[%s] = %+v, want names %v, acks >= 1, no nacks", typeURL, ts, want)
		}
	}
}

func TestNodeReachesServer(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", snapshot(t, "1"))
	p := &proxy{}
	startClient(t, cp.addr, p)
	waitFor(t, "all four types", func() bool { return p.hasVersion("1") })

	// The ADS server copies the stream's node into every request it hands
	// to the callbacks, so every one must carry ours, intact.
	want := &corepb.Node{
		Id:                   nodeID,
		Cluster:              "cart",
		Metadata:             mustStruct(t, testMetadata),
		UserAgentName:        xdsclient.DefaultUserAgentName,
		UserAgentVersionType: &corepb.Node_UserAgentVersion{UserAgentVersion: "0.1.0-test"},
	}
	if got := cp.countRequests(func(r *discoverypb.DiscoveryRequest) bool { return !proto.Equal(r.GetNode(), want) }); got != 0 {
		r := cp.findRequest(func(r *discoverypb.DiscoveryRequest) bool { return !proto.Equal(r.GetNode(), want) })
		t.Fatalf("%d requests with node %v, want %v", got, r.GetNode(), want)
	}
	if got := cp.findRequest(func(*discoverypb.DiscoveryRequest) bool { return true }).GetNode().GetMetadata().GetFields()["weft.labels"].GetStructValue().GetFields()["version"].GetStringValue(); got != "v2" {
		t.Errorf("metadata weft.labels.version = %q, want v2", got)
	}

	// On the wire, only the first request of the stream carries it.
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.wire) < 4 {
		t.Fatalf("server received %d requests, want at least 4", len(cp.wire))
	}
	for i, w := range cp.wire {
		if hasNode := w.req.GetNode() != nil; hasNode != (i == 0) {
			t.Errorf("request %d (%s): has node = %v, want %v", i, w.req.GetTypeUrl(), hasNode, i == 0)
		}
	}
}

func TestACK(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", snapshot(t, "1"))
	p := &proxy{}
	startClient(t, cp.addr, p)
	waitFor(t, "all four types", func() bool { return p.hasVersion("1") })

	for _, typeURL := range allTypes {
		resp := cp.findResponse(func(r *discoverypb.DiscoveryResponse) bool { return r.GetTypeUrl() == typeURL })
		if resp == nil {
			t.Fatalf("no %s response recorded", typeURL)
		}
		waitFor(t, "ACK of "+typeURL, func() bool {
			return cp.findRequest(func(r *discoverypb.DiscoveryRequest) bool {
				return r.GetTypeUrl() == typeURL && r.GetResponseNonce() == resp.GetNonce() &&
					r.GetVersionInfo() == resp.GetVersionInfo() && r.GetErrorDetail() == nil
			}) != nil
		})
	}
}

func TestNACK(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", snapshot(t, "1"))
	rejectErr := errors.New("cluster backend: unsupported lb policy")
	var rejecting sync.Mutex // guards rejectVersion
	rejectVersion := "2"
	p := &proxy{reject: func(typeURL, version string) error {
		rejecting.Lock()
		defer rejecting.Unlock()
		if typeURL == typeCDS && version == rejectVersion {
			return rejectErr
		}
		return nil
	}}
	c := startClient(t, cp.addr, p)
	waitFor(t, "version 1", func() bool { return p.hasVersion("1") })
	waitFor(t, "CDS ACK", func() bool { return c.Status().Types[typeCDS].Version == "1" })

	cp.setSnapshot(t, snapshot(t, "2"))
	isNACK := func(r *discoverypb.DiscoveryRequest) bool {
		return r.GetTypeUrl() == typeCDS && r.GetErrorDetail() != nil
	}
	waitFor(t, "NACK", func() bool { return cp.findRequest(isNACK) != nil })
	nack := cp.findRequest(isNACK)
	resp := cp.findResponse(func(r *discoverypb.DiscoveryResponse) bool {
		return r.GetTypeUrl() == typeCDS && r.GetNonce() == nack.GetResponseNonce()
	})
	if resp.GetVersionInfo() != "2" {
		t.Errorf("NACK answers a response of version %q, want 2", resp.GetVersionInfo())
	}
	if nack.GetVersionInfo() != "1" || nack.GetErrorDetail().GetMessage() != rejectErr.Error() || nack.GetErrorDetail().GetCode() != 3 {
		t.Errorf("NACK = version %q, error_detail %v; want version 1, code 3, message %q",
			nack.GetVersionInfo(), nack.GetErrorDetail(), rejectErr)
	}
	ts := c.Status().Types[typeCDS]
	if ts.Version != "1" || ts.NackError != rejectErr.Error() || ts.Nacks < 1 {
		t.Errorf("Status.Types[CDS] = %+v, want version 1, the NACK error, nacks >= 1", ts)
	}
	// Only CDS is rejected: the other types move on to version 2.
	waitFor(t, "EDS, LDS and RDS at version 2", func() bool {
		for _, typeURL := range []string{typeEDS, typeLDS, typeRDS} {
			if u, _ := p.latest(typeURL); u.version != "2" {
				return false
			}
		}
		return true
	})

	// go-control-plane answers every NACK with the same snapshot at once;
	// the client must pace its NACKs rather than loop at network speed.
	time.Sleep(700 * time.Millisecond)
	if n := cp.countRequests(isNACK); n < 2 || n > 30 {
		t.Errorf("%d NACKs in 700ms, want a paced handful (2..30)", n)
	}

	// A good version is ACKed and clears the NACK state.
	rejecting.Lock()
	rejectVersion = ""
	rejecting.Unlock()
	cp.setSnapshot(t, snapshot(t, "3"))
	waitFor(t, "CDS ACK of version 3", func() bool {
		ts := c.Status().Types[typeCDS]
		return ts.Version == "3" && ts.NackError == ""
	})
}

func TestNewVersionIsPushed(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", snapshot(t, "1"))
	p := &proxy{}
	startClient(t, cp.addr, p)
	waitFor(t, "version 1", func() bool { return p.hasVersion("1") })
	cp.setSnapshot(t, snapshot(t, "2"))
	waitFor(t, "version 2", func() bool { return p.hasVersion("2") })
}

func TestReconnectResubscribes(t *testing.T) {
	t.Parallel()
	cp1 := startControlPlane(t, "127.0.0.1:0", snapshot(t, "1"))
	p := &proxy{}
	c := startClient(t, cp1.addr, p)
	waitFor(t, "version 1", func() bool { return p.hasVersion("1") })
	waitFor(t, "all ACKed", func() bool { return c.Status().Types[typeRDS].Version == "1" })

	cp1.srv.Stop()
	waitFor(t, "disconnect", func() bool { return !c.Status().Connected })

	cp2 := startControlPlane(t, cp1.addr, snapshot(t, "2"))
	waitFor(t, "version 2 from the new server", func() bool { return p.hasVersion("2") })
	st := c.Status()
	if !st.Connected || st.Reconnects < 1 || st.LastError == nil {
		t.Errorf("Status = connected %v, reconnects %d, last error %v; want connected, >= 1, non-nil",
			st.Connected, st.Reconnects, st.LastError)
	}

	// The new stream starts with one request per subscribed type, carrying
	// what the proxy already has: the ACKed version and the names.
	cp2.mu.Lock()
	defer cp2.mu.Unlock()
	if len(cp2.wire) < 4 {
		t.Fatalf("new server received %d requests, want at least 4", len(cp2.wire))
	}
	wantNames := map[string][]string{typeCDS: nil, typeLDS: nil, typeEDS: {"backend"}, typeRDS: {"outbound"}}
	for i, w := range cp2.wire[:4] {
		r := w.req
		want, ok := wantNames[r.GetTypeUrl()]
		if !ok {
			t.Errorf("request %d: unexpected or repeated type %q", i, r.GetTypeUrl())
			continue
		}
		delete(wantNames, r.GetTypeUrl())
		if r.GetVersionInfo() != "1" || r.GetResponseNonce() != "" || !slices.Equal(r.GetResourceNames(), want) || (r.GetNode() != nil) != (i == 0) {
			t.Errorf("request %d: %s version %q nonce %q names %v node %v; want version 1, no nonce, names %v, node only first",
				i, r.GetTypeUrl(), r.GetVersionInfo(), r.GetResponseNonce(), r.GetResourceNames(), r.GetNode() != nil, want)
		}
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", snapshot(t, "1"))
	// A port nothing listens on: the client is in its retry loop.
	ln := listen(t, "127.0.0.1:0")
	deadAddr := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name      string
		server    string
		connected bool
	}{
		{"streaming", cp.addr, true},
		{"retrying", deadAddr, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &proxy{}
			c, err := xdsclient.New(xdsclient.Options{Server: tt.server, Node: xdsclient.Node{ID: nodeID}, Handler: p,
				InitialBackoff: time.Second, MaxBackoff: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			p.client = c
			c.Subscribe(typeCDS, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			if tt.connected {
				waitFor(t, "CDS", func() bool { return p.count(typeCDS) > 0 })
				if err := c.Run(ctx); err == nil {
					t.Error("second concurrent Run returned nil, want an error")
				}
			} else {
				waitFor(t, "a failed attempt", func() bool { return c.Status().LastError != nil })
			}
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("Run did not return after cancel")
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("Run took %v to return after cancel", d)
			}
			if c.Status().Connected {
				t.Error("Status().Connected after Run returned")
			}
		})
	}
}

// A server without the ADS service answers with a trailers-only
// Unimplemented status.
func TestServerStatusError(t *testing.T) {
	t.Parallel()
	srv := grpc.NewServer()
	ln := listen(t, "127.0.0.1:0")
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	c := startClient(t, ln.Addr().String(), &proxy{})
	waitFor(t, "a stream error", func() bool { return c.Status().LastError != nil })
	var se *xdsclient.StatusError
	if err := c.Status().LastError; !errors.As(err, &se) || se.Code != 12 {
		t.Fatalf("LastError = %v, want a StatusError with code 12 (Unimplemented)", err)
	}
}
