package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// TestTrafficBalancing: RING_HASH keeps a key on one endpoint; locality
// failover sends traffic to another zone when the local endpoints fail,
// and back when they heal.
func TestTrafficBalancing(t *testing.T) {
	cp := newControlPlane(t)
	hash := startFleet(t, cp, "hash", 3, nil, nil)
	geo := startFleet(t, cp, "geo", 2, nil, nil)
	cp.apply(t, fleetServiceYAML("hash", hash.port, "")+fleetServiceYAML("geo", geo.port, "")+`apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: hash, namespace: shop}
spec:
  targetRef: {kind: Service, name: hash}
  loadBalancer: {type: RING_HASH, hash: {header: x-user}}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: geo, namespace: shop}
spec:
  targetRef: {kind: Service, name: geo}
  outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 2s}
`)
	hash.sidecars(t, cp, nil)
	zones := []string{"zone-a", "zone-b"}
	geo.sidecars(t, cp, func(i int) []string {
		return []string{"topology.kubernetes.io/region=r1", "topology.kubernetes.io/zone=" + zones[i]}
	})
	client := startSidecar(t, cp, sidecarOpts{workload: "client-1", namespace: "shop",
		labels: []string{"topology.kubernetes.io/region=r1", "topology.kubernetes.io/zone=zone-a"}})
	c := proxyClient(client)
	waitFor(t, "all hash endpoints known", 15*time.Second, func() error {
		rs := send(c, 60, 4, func(i int) *http.Request { return getReq("http://hash.shop/", "x-user", fmt.Sprint("u", i)) })
		if e := firstErr(rs); e != "" {
			return fmt.Errorf("%s", e)
		}
		if b := backends(rs); len(b) < 3 {
			return fmt.Errorf("keys spread over %v", b)
		}
		return nil
	})

	t.Run("ring hash keeps a key on one endpoint", func(t *testing.T) {
		for u := range 10 {
			user := fmt.Sprint("user-", u)
			rs := send(c, 20, 4, func(int) *http.Request { return getReq("http://hash.shop/", "x-user", user) })
			if b := backends(rs); len(b) != 1 || b[""] != 0 {
				t.Fatalf("%s went to %v", user, b)
			}
		}
	})

	t.Run("locality failover", func(t *testing.T) {
		waitFor(t, "local zone preferred", 10*time.Second, func() error {
			rs := send(c, 30, 3, func(int) *http.Request { return getReq("http://geo.shop/") })
			if b := backends(rs); b["geo-0"] != 30 {
				return fmt.Errorf("traffic went to %v, want all in zone-a (geo-0)", b)
			}
			return nil
		})
		geo.inst[0].fail.Store(503)
		waitFor(t, "failover to zone-b", 10*time.Second, func() error {
			rs := send(c, 30, 3, func(int) *http.Request { return getReq("http://geo.shop/") })
			if b := backends(rs); b["geo-1"] != 30 || statusCounts(rs)[200] != 30 {
				return fmt.Errorf("traffic went to %v with %v", b, statusCounts(rs))
			}
			return nil
		})
		geo.inst[0].fail.Store(0)
		waitFor(t, "back to zone-a once healed", 15*time.Second, func() error {
			rs := send(c, 30, 3, func(int) *http.Request { return getReq("http://geo.shop/") })
			if b := backends(rs); b["geo-0"] != 30 {
				return fmt.Errorf("traffic went to %v", b)
			}
			return nil
		})
	})
}

// TestTrafficProtocols: WebSocket (and no tunnel on a 200 answer), gRPC
// unary and streaming through two proxies with deadlines and metadata (the
// grpc-go interop cases), a stream that outlives a config push, hot
// config changes under load without an error, and TCPRoute weights.
func TestTrafficProtocols(t *testing.T) {
	cp := newControlPlane(t)
	ws := startFleet(t, cp, "ws", 1, func(i int, in *instance) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/echo", websocket.Handler(func(c *websocket.Conn) { io.Copy(c, c) }))
		mux.HandleFunc("/no-upgrade", func(w http.ResponseWriter, r *http.Request) { io_WriteString(w, "not upgrading") })
		mux.HandleFunc("/after", func(w http.ResponseWriter, r *http.Request) { io_WriteString(w, "plain request") })
		return mux
	}, nil)

	// gRPC interop server.
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, interop.NewTestServer())
	go gs.Serve(gln)
	t.Cleanup(gs.Stop)
	gport := portOf(t, gln.Addr().String())

	// TCP: two backends that say who they are.
	tcpPorts := map[string]string{}
	var tcpMu sync.Mutex
	tcpHits := map[string]int{}
	for _, name := range []string{"db-a", "db-b"} {
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
				tcpMu.Lock()
				tcpHits[name]++
				tcpMu.Unlock()
				c.Write([]byte(name))
				c.Close()
			}
		}()
		tcpPorts[name] = portOf(t, ln.Addr().String())
	}

	cp.apply(t, fleetServiceYAML("ws", ws.port, "")+`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: interop, namespace: shop}
spec:
  selector: {app: interop}
  ports: [{name: grpc, port: 9090, targetPort: `+gport+`, protocol: GRPC}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports: [{name: pg, port: 5432, targetPort: `+tcpPorts["db-a"]+`, protocol: TCP}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db-a, namespace: shop}
spec:
  selector: {app: db, track: a}
  ports: [{name: pg, port: 5432, targetPort: `+tcpPorts["db-a"]+`, protocol: TCP}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db-b, namespace: shop}
spec:
  selector: {app: db, track: b}
  ports: [{name: pg, port: 5432, targetPort: `+tcpPorts["db-b"]+`, protocol: TCP}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: db, port: 5432}]
  rules:
  - backendRefs:
    - {name: db-a, port: 5432, weight: 80}
    - {name: db-b, port: 5432, weight: 20}
`)
	ws.sidecars(t, cp, nil)
	startSidecar(t, cp, sidecarOpts{workload: "interop-1", namespace: "shop", identity: "interop", labels: []string{"app=interop"}, appPort: gport, appProtocol: "GRPC"})
	startSidecar(t, cp, sidecarOpts{workload: "db-a-1", namespace: "shop", identity: "db", labels: []string{"app=db", "track=a"}, appPort: tcpPorts["db-a"], appProtocol: "TCP"})
	startSidecar(t, cp, sidecarOpts{workload: "db-b-1", namespace: "shop", identity: "db", labels: []string{"app=db", "track=b"}, appPort: tcpPorts["db-b"], appProtocol: "TCP"})
	client := startSidecar(t, cp, sidecarOpts{workload: "client-1", namespace: "shop",
		upstreams: []string{"ws.shop", "interop.shop:9090", "db.shop:5432"}})

	t.Run("websocket echo", func(t *testing.T) {
		var conn *websocket.Conn
		waitFor(t, "websocket handshake", 15*time.Second, func() error {
			raw, err := net.DialTimeout("tcp", client.upstreams["ws.shop"], time.Second)
			if err != nil {
				return err
			}
			cfg, _ := websocket.NewConfig("ws://ws.shop/echo", "http://ws.shop/")
			conn, err = websocket.NewClient(cfg, raw)
			if err != nil {
				raw.Close()
			}
			return err
		})
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		for i := range 5 {
			msg := fmt.Sprintf("hello %d through two proxies", i)
			if err := websocket.Message.Send(conn, msg); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := websocket.Message.Receive(conn, &got); err != nil {
				t.Fatal(err)
			}
			if got != msg {
				t.Fatalf("echo %q, want %q", got, msg)
			}
		}
	})

	t.Run("no tunnel when the upstream answers 200", func(t *testing.T) {
		raw, err := net.DialTimeout("tcp", client.upstreams["ws.shop"], time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(raw)
		fmt.Fprintf(raw, "GET /no-upgrade HTTP/1.1\r\nHost: ws.shop\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "not upgrading" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		// The connection is still HTTP: a next request is parsed as one.
		fmt.Fprintf(raw, "GET /after HTTP/1.1\r\nHost: ws.shop\r\n\r\n")
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("the connection became a tunnel: %v", err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "plain request" {
			t.Fatalf("second request: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("grpc interop cases through two proxies", func(t *testing.T) {
		conn, err := grpc.NewClient(client.upstreams["interop.shop:9090"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		tc := testgrpc.NewTestServiceClient(conn)
		waitFor(t, "grpc reachable", 15*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := tc.EmptyCall(ctx, &testpb.Empty{})
			return err
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Each case fails the whole test binary (grpclog.Fatal) on error.
		interop.DoEmptyUnaryCall(ctx, tc)
		interop.DoLargeUnaryCall(ctx, tc)
		interop.DoClientStreaming(ctx, tc)
		interop.DoServerStreaming(ctx, tc)
		interop.DoPingPong(ctx, tc)
		interop.DoEmptyStream(ctx, tc)
		interop.DoTimeoutOnSleepingServer(ctx, tc)
		interop.DoCancelAfterBegin(ctx, tc)
		interop.DoCancelAfterFirstResponse(ctx, tc)
		interop.DoCustomMetadata(ctx, tc)
		interop.DoStatusCodeAndMessage(ctx, tc)
		interop.DoSpecialStatusMessage(ctx, tc)

		// A stream outlives a config push.
		stream, err := tc.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pingPong := func() {
			t.Helper()
			req := &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 10}}}
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		pingPong()
		cp.apply(t, `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: interop, namespace: shop}
spec:
  targetRef: {kind: Service, name: interop}
  timeouts: {request: 37s}
`)
		waitFor(t, "policy pushed", 10*time.Second, func() error {
			if !strings.Contains(adminGet(t, client.admin, "/config_dump"), "37s") {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		for range 3 {
			pingPong()
		}
		stream.CloseSend()
	})

	t.Run("hot config changes under load drop nothing", func(t *testing.T) {
		c := proxyClient(client)
		stop := make(chan struct{})
		var total, failed atomic.Int64
		var firstFail atomic.Value
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					rs := send(c, 1, 1, func(int) *http.Request { return getReq("http://ws.shop/after") })
					total.Add(1)
					if rs[0].code != 200 {
						failed.Add(1)
						firstFail.CompareAndSwap(nil, firstErr(rs))
					}
				}
			}()
		}
		for i := range 5 {
			cp.apply(t, fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: ws, namespace: shop}
spec:
  targetRef: {kind: Service, name: ws}
  timeouts: {request: %ds}
`, 10+i))
			time.Sleep(400 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if failed.Load() != 0 || total.Load() < 50 {
			t.Fatalf("%d of %d requests failed during config pushes (first: %v)", failed.Load(), total.Load(), firstFail.Load())
		}
	})

	t.Run("TCPRoute weights", func(t *testing.T) {
		dial := func() (string, error) {
			c, err := net.DialTimeout("tcp", client.upstreams["db.shop:5432"], time.Second)
			if err != nil {
				return "", err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			return string(b), err
		}
		waitFor(t, "tcp route", 15*time.Second, func() error {
			got, err := dial()
			if err != nil || (got != "db-a" && got != "db-b") {
				return fmt.Errorf("%q %v", got, err)
			}
			return nil
		})
		counts := map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= 500 {
					got, _ := dial()
					mu.Lock()
					counts[got]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if counts["db-a"]+counts["db-b"] != 500 {
			t.Fatalf("connections failed: %v", counts)
		}
		if !within(counts["db-a"], 500, 0.80, 0.05) {
			t.Fatalf("db-a got %d/500, want 80%% ± 5%%: %v", counts["db-a"], counts)
		}
	})
}

func adminGet(t *testing.T, admin, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
