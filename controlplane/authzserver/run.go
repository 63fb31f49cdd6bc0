package authzserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// DefaultListen is where weft authz-server listens by default: loopback,
// beside the sidecars that ask it.
const DefaultListen = "127.0.0.1:9191"

// ServiceName is the gRPC service the server registers (and reports in
// gRPC health).
const ServiceName = "envoy.service.auth.v3.Authorization"

// RunOptions configure Run: a Server plus where and how it listens.
type RunOptions struct {
	Options
	// Listen is the gRPC address (DefaultListen).
	Listen string
	// TLSCert and TLSKey (PEM files) turn on TLS; ClientCA (PEM) also
	// requires and verifies client certificates (mutual TLS).
	TLSCert, TLSKey, ClientCA string
	// AllowPlaintext permits plaintext on a non-loopback address.
	AllowPlaintext bool
	// Watch reloads the policy when its files change.
	Watch bool
	// MetricsAddr, if set, serves GET /metrics (Prometheus text) there.
	MetricsAddr string
	// Ready, if set, is called once the listeners are bound.
	Ready func(Ready)
}

// Ready describes a started server.
type Ready struct {
	Listen, Metrics string
	TLS, MTLS       bool
	Policy          *Policy // nil: no good policy, every request is denied
	LoadError       error
}

// Run serves Check and gRPC health until ctx ends, then stops gracefully
// (in-flight Checks finish, for at most 5 s).
func Run(ctx context.Context, o RunOptions) error {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	creds, err := serverCredentials(o)
	if err != nil {
		return err
	}
	if creds == nil && !o.AllowPlaintext && !loopback(o.Listen) {
		return fmt.Errorf("authz: plaintext on %s, which is not a loopback address: set --tls-cert/--tls-key (and --client-ca), or --allow-plaintext", o.Listen)
	}

	hs := health.NewServer()
	setHealth := func(loaded bool) {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if loaded {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
		hs.SetServingStatus(ServiceName, st)
	}
	o.OnPolicy = setHealth
	srv, err := New(o.Options)
	if err != nil {
		return err
	}

	lis, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("authz: listen: %w", err)
	}
	gopts := []grpc.ServerOption{
		// Twice the budget: a request past MaxRequestBytes is still read and
		// denied; only a far larger one is refused by gRPC itself.
		grpc.MaxRecvMsgSize(2*srv.opts.MaxRequestBytes + 64<<10),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if creds != nil {
		gopts = append(gopts, grpc.Creds(creds))
	}
	gs := grpc.NewServer(gopts...)
	authv3.RegisterAuthorizationServer(gs, srv)
	healthpb.RegisterHealthServer(gs, hs)

	var metricsSrv *http.Server
	metricsAddr := ""
	if o.MetricsAddr != "" {
		ml, err := net.Listen("tcp", o.MetricsAddr)
		if err != nil {
			lis.Close()
			return fmt.Errorf("authz: metrics listen: %w", err)
		}
		metricsAddr = ml.Addr().String()
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			srv.writeMetrics(w)
		})
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = metricsSrv.Serve(ml) }()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.Watch {
		go srv.Watch(ctx)
	}
	if o.Ready != nil {
		o.Ready(Ready{
			Listen: lis.Addr().String(), Metrics: metricsAddr,
			TLS: creds != nil, MTLS: o.ClientCA != "",
			Policy: srv.Policy(), LoadError: srv.LoadError(),
		})
	}

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		hs.Shutdown()
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			gs.Stop()
		}
		err = nil
	}
	if metricsSrv != nil {
		_ = metricsSrv.Close()
	}
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}

func serverCredentials(o RunOptions) (credentials.TransportCredentials, error) {
	if o.TLSCert == "" && o.TLSKey == "" {
		if o.ClientCA != "" {
			return nil, errors.New("authz: --client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	if o.TLSCert == "" || o.TLSKey == "" {
		return nil, errors.New("authz: --tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("authz: server certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.ClientCA != "" {
		pem, err := os.ReadFile(o.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("authz: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("authz: client CA %s: no PEM certificate", o.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
