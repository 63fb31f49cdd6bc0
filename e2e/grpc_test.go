package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestGRPCThroughProxies: unary and server-streaming gRPC calls pass both
// proxies with status codes and trailers intact.
func TestGRPCThroughProxies(t *testing.T) {
	cp := newControlPlane(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("weft.Catalog", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	port := portOf(t, ln.Addr().String())

	cp.apply(t, `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  selector: {app: catalog}
  ports: [{name: grpc, port: 9090, targetPort: `+port+`, protocol: GRPC}]
`)
	startSidecar(t, cp, sidecarOpts{workload: "catalog-1", namespace: "shop", labels: []string{"app=catalog"}, appPort: port, appProtocol: "GRPC"})
	client := startSidecar(t, cp, sidecarOpts{workload: "web-1", namespace: "shop", upstreams: []string{"catalog.shop:9090"}})

	conn, err := grpc.NewClient(client.upstreams["catalog.shop:9090"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "weft.Catalog"})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return status.Errorf(codes.Unknown, "status %v", resp.Status)
		}
		return nil
	})
	// A gRPC error travels in trailers (here a trailers-only response).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: got %v, want NotFound", err)
	}
	// Server streaming: the first status, then an update pushed later.
	stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "weft.Catalog"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch first: %v %v", first, err)
	}
	hs.SetServingStatus("weft.Catalog", healthpb.HealthCheckResponse_NOT_SERVING)
	second, err := stream.Recv()
	if err != nil || second.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch update: %v %v", second, err)
	}
}
