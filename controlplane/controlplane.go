package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"crypto/x509"
	"encoding/pem"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/issuer"
	"github.com/weftmesh/weft/controlplane/jwks"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/registry"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/bolt"
	"github.com/weftmesh/weft/controlplane/telemetry"
	"github.com/weftmesh/weft/controlplane/token"
	"github.com/weftmesh/weft/controlplane/xds"
)

// Defaults of the control plane's addresses.
const (
	DefaultXDSAddr    = "127.0.0.1:15010"
	DefaultIssuerAddr = "127.0.0.1:15012"
	DefaultAPIAddr    = "127.0.0.1:15080"
)

// Options configure a control plane.
type Options struct {
	// DataDir holds the bbolt store (weft.db).
	DataDir string
	// Store, when set, is used instead of opening DataDir.
	Store   store.Store
	XDSAddr string
	APIAddr string
	// IssuerAddr serves certificate signing requests (TLS).
	IssuerAddr string
	// TrustDomain of the mesh's SPIFFE IDs (weft.local by default).
	TrustDomain string
	// CACert, CAKey and CABundle take an intermediate from an existing PKI
	// instead of creating a root.
	CACert, CAKey, CABundle string
	// WorkloadCertTTL is the lifetime of workload certificates (24h).
	WorkloadCertTTL time.Duration
	// Grace keeps a disconnected workload's endpoints (registry.DefaultGrace).
	Grace    time.Duration
	Debounce time.Duration
	// TelemetryWindow is how much traffic history `weft stat` can see
	// (telemetry.DefaultWindow).
	TelemetryWindow time.Duration
	// JWKSRefresh is how often each RequestAuthentication jwksUri is
	// fetched again, and the longest wait between retries of a failing one
	// (jwks.DefaultRefresh).
	JWKSRefresh time.Duration
	Logger      *slog.Logger
	// Ready, if set, is called once the listeners are bound.
	Ready func(Addresses)
}

// Addresses are where a running control plane serves, and what a proxy
// needs to trust it.
type Addresses struct {
	XDS, Issuer, API string
	TrustDomain      string
	CAPin            string
}

func bundlePEM(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// Run starts the control plane and blocks until ctx ends or a listener
// fails.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.XDSAddr == "" {
		opts.XDSAddr = DefaultXDSAddr
	}
	if opts.APIAddr == "" {
		opts.APIAddr = DefaultAPIAddr
	}
	if opts.IssuerAddr == "" {
		opts.IssuerAddr = DefaultIssuerAddr
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = "weft.local"
	}
	if opts.WorkloadCertTTL <= 0 {
		opts.WorkloadCertTTL = 24 * time.Hour
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		return fmt.Errorf("control plane: --trust-domain %q: %w", opts.TrustDomain, err)
	}
	caDir := filepath.Join(opts.DataDir, "ca")
	if opts.DataDir == "" {
		return errors.New("control plane: a data dir is required (it holds the CA)")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("control plane: data dir: %w", err)
	}
	authority, err := ca.Open(ca.Options{Dir: caDir, TrustDomain: td, CertFile: opts.CACert, KeyFile: opts.CAKey,
		BundleFile: opts.CABundle, WorkloadTTL: opts.WorkloadCertTTL, Logger: opts.Logger.With("component", "ca")})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	log := opts.Logger
	st := opts.Store
	if st == nil {
		path := filepath.Join(opts.DataDir, "weft.db")
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			return fmt.Errorf("control plane: open store %s: %w", path, err)
		}
		defer s.Close()
		st = s
		log.Info("store opened", "path", path)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	serving, err := newServingCert(authority, []string{opts.XDSAddr, opts.IssuerAddr}, log.With("component", "ca"))
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	stopServing := make(chan struct{})
	defer close(stopServing)
	go serving.run(stopServing)
	tokens := token.New(st, token.Options{})
	iss := issuer.New(issuer.Options{CA: authority, Tokens: tokens, Store: st, TTL: opts.WorkloadCertTTL, Logger: log.With("component", "issuer")})

	var xdsServer *xds.Server
	// Key sets of RequestAuthentication jwksUri, fetched here and inlined
	// into the proxies' config; a change pushes.
	keySets := jwks.New(ctx, jwks.Options{
		Refresh:  opts.JWKSRefresh,
		OnChange: func() { xdsServer.Trigger() },
		Logger:   log.With("component", "jwks"),
	})
	reg := registry.New(registry.Options{
		Store:    st,
		Grace:    opts.Grace,
		Logger:   log.With("component", "registry"),
		OnChange: func() { xdsServer.Trigger() },
	})
	defer reg.Close()
	xdsServer = xds.New(ctx, xds.Options{
		Registry: reg,
		Resources: func(ctx context.Context) (*model.State, error) {
			state, err := loadState(ctx, st, log)
			if err != nil {
				return nil, err
			}
			state.TrustDomain = authority.TrustDomain().String()
			state.TrustBundle = bundlePEM(authority.Bundle())
			state.JWKS = keySets.Sync(state.JWKSURIs())
			return state, nil
		},
		Debounce: opts.Debounce,
		Logger:   log.With("component", "xds"),
		PeerIdentity: func(ctx context.Context) (string, string, error) {
			p, ok := peer.FromContext(ctx)
			if !ok {
				return "", "", errors.New("no peer")
			}
			info, ok := p.AuthInfo.(credentials.TLSInfo)
			if !ok || len(info.State.PeerCertificates) == 0 {
				return "", "", errors.New("xDS needs a mesh certificate")
			}
			var raw [][]byte
			for _, c := range info.State.PeerCertificates {
				raw = append(raw, c.Raw)
			}
			id, err := verifyMeshPeer(authority, raw)
			if err != nil {
				return "", "", err
			}
			ns, sa, ok := issuer.ParseWorkloadID(id)
			if !ok {
				return "", "", fmt.Errorf("%s is not a workload identity", id)
			}
			return ns, sa, nil
		},
	})
	if err := reg.Load(ctx); err != nil {
		return err
	}

	xdsLis, err := net.Listen("tcp", opts.XDSAddr)
	if err != nil {
		return fmt.Errorf("control plane: xDS listener: %w (is another control plane running? choose another address with --xds-addr)", err)
	}
	apiLis, err := net.Listen("tcp", opts.APIAddr)
	if err != nil {
		xdsLis.Close()
		return fmt.Errorf("control plane: API listener: %w (is another control plane running? choose another address with --api-addr)", err)
	}
	issLis, err := net.Listen("tcp", opts.IssuerAddr)
	if err != nil {
		xdsLis.Close()
		apiLis.Close()
		return fmt.Errorf("control plane: issuer listener: %w (is another control plane running? choose another address with --issuer-addr)", err)
	}
	// The proxies push their counters to the issuer's listener, with the
	// same mutual TLS as a renewal; the peer is verified against the
	// current bundle as the xDS server does.
	tel := telemetry.New(telemetry.Options{
		Window: opts.TelemetryWindow,
		PeerIdentity: func(r *http.Request) (string, string, error) {
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				return "", "", errors.New("a mesh client certificate is required")
			}
			raw := make([][]byte, 0, len(r.TLS.PeerCertificates))
			for _, c := range r.TLS.PeerCertificates {
				raw = append(raw, c.Raw)
			}
			id, err := verifyMeshPeer(authority, raw)
			if err != nil {
				return "", "", err
			}
			ns, sa, ok := issuer.ParseWorkloadID(id)
			if !ok {
				return "", "", fmt.Errorf("%s is not a workload identity", id)
			}
			return ns, sa, nil
		},
		Workloads: func() []telemetry.Workload {
			list := reg.List()
			out := make([]telemetry.Workload, 0, len(list))
			for _, w := range list {
				out = append(out, telemetry.Workload{Name: w.Name, Namespace: w.Namespace, Labels: w.Labels})
			}
			return out
		},
		Authorize: func(namespace, workload, identity string) (string, error) {
			registered, address, ok := reg.Identity(namespace, workload)
			switch {
			case !ok:
				return "", fmt.Errorf("workload %s/%s is not registered", namespace, workload)
			case registered != identity:
				return "", fmt.Errorf("identity %s cannot report for workload %s/%s", identity, namespace, workload)
			}
			return address, nil
		},
		Logger: log.With("component", "telemetry"),
	})
	issMux := http.NewServeMux()
	issMux.Handle(telemetry.PushPath, tel.PushHandler())
	issMux.Handle("/", iss)
	issSrv := &http.Server{Handler: issMux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: serving.serverTLS(false, []string{"http/1.1"})}

	g := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(serving.serverTLS(true, []string{"h2"}))),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Every proxy holds one stream open: per-connection buffers are
		// the control plane's memory (32 KiB each way by default: 640 MB
		// at 10,000 proxies). Config pushes are rare and small.
		grpc.ReadBufferSize(8<<10),
		grpc.WriteBufferSize(8<<10),
	)
	xdsServer.Register(g)
	api := &http.Server{
		Handler: apiserver.New(apiserver.Options{
			Store: st, Workloads: reg, Proxies: xdsServer, Logger: log.With("component", "api"),
			Identity: &apiserver.Identity{CA: authority, Tokens: tokens, Issuer: iss,
				IssuerAddr: issLis.Addr().String(), XDSAddr: xdsLis.Addr().String()},
			OnBundleChange: func() { serving.reissue(); xdsServer.Trigger() },
			Telemetry:      tel.APIHandler(),
			KeySets:        keySets,
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	errc := make(chan error, 3)
	go func() { errc <- g.Serve(xdsLis) }()
	go func() {
		if err := issSrv.ServeTLS(issLis, "", ""); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	go func() {
		if err := api.Serve(apiLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	go xdsServer.Run(ctx)
	go func() { errc <- watchResources(ctx, st, xdsServer.Trigger, log) }()
	xdsServer.Trigger()

	log.Info("control plane ready", "xds", xdsLis.Addr().String(), "issuer", issLis.Addr().String(), "api", apiLis.Addr().String(),
		"trust_domain", authority.TrustDomain().String(), "ca_pin", authority.Pin())
	if opts.Ready != nil {
		opts.Ready(Addresses{XDS: xdsLis.Addr().String(), Issuer: issLis.Addr().String(), API: apiLis.Addr().String(),
			TrustDomain: authority.TrustDomain().String(), CAPin: authority.Pin()})
	}

	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
		if err != nil {
			err = fmt.Errorf("control plane: %w", err)
		}
	}
	log.Info("control plane stopping")
	shutdown, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	_ = api.Shutdown(shutdown)
	_ = issSrv.Shutdown(shutdown)
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		g.Stop()
	}
	return err
}

// loadState reads every configuration object from the store.
func loadState(ctx context.Context, st store.Store, log *slog.Logger) (*model.State, error) {
	kvs, _, err := st.List(ctx, apiserver.ResourcePrefix)
	if err != nil {
		return nil, err
	}
	objs := make([]resource.Object, 0, len(kvs))
	for _, kv := range kvs {
		o, err := resource.DecodeJSON(kv.Value)
		if err == nil {
			err = resource.Validate(o)
		}
		if err != nil {
			// Only validated objects are stored; one that no longer
			// decodes (written by another version) is skipped, loudly.
			log.Error("skipping stored object that does not validate", "key", kv.Key, "error", err)
			continue
		}
		objs = append(objs, o)
	}
	return model.FromObjects(objs, nil)
}

// watchResources triggers a push on every change of a configuration
// object, re-listing when the watch is lost.
func watchResources(ctx context.Context, st store.Store, trigger func(), log *slog.Logger) error {
	for {
		_, rev, err := st.List(ctx, apiserver.ResourcePrefix)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch resources: %w", err)
		}
		ch, err := st.Watch(ctx, apiserver.ResourcePrefix, rev)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch resources: %w", err)
		}
		trigger()
		for ev := range ch {
			if ev.Type == store.EventError {
				if errors.Is(ev.Err, store.ErrClosed) {
					return nil
				}
				log.Warn("resource watch lost; listing again", "error", ev.Err)
				break
			}
			if strings.HasPrefix(ev.KV.Key, apiserver.ResourcePrefix) {
				trigger()
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}
