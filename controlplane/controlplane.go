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

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/registry"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/bolt"
	"github.com/weftmesh/weft/controlplane/xds"
)

// Defaults of the control plane's addresses.
const (
	DefaultXDSAddr = "127.0.0.1:15010"
	DefaultAPIAddr = "127.0.0.1:15080"
)

// Options configure a control plane.
type Options struct {
	// DataDir holds the bbolt store (weft.db).
	DataDir string
	// Store, when set, is used instead of opening DataDir.
	Store   store.Store
	XDSAddr string
	APIAddr string
	// Grace keeps a disconnected workload's endpoints (registry.DefaultGrace).
	Grace    time.Duration
	Debounce time.Duration
	Logger   *slog.Logger
	// Ready, if set, is called once both listeners are bound.
	Ready func(xdsAddr, apiAddr string)
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
	log := opts.Logger
	st := opts.Store
	if st == nil {
		if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
			return fmt.Errorf("control plane: data dir: %w", err)
		}
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

	var xdsServer *xds.Server
	reg := registry.New(registry.Options{
		Store:    st,
		Grace:    opts.Grace,
		Logger:   log.With("component", "registry"),
		OnChange: func() { xdsServer.Trigger() },
	})
	defer reg.Close()
	xdsServer = xds.New(ctx, xds.Options{
		Registry:  reg,
		Resources: func(ctx context.Context) (*model.State, error) { return loadState(ctx, st, log) },
		Debounce:  opts.Debounce,
		Logger:    log.With("component", "xds"),
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

	g := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	xdsServer.Register(g)
	api := &http.Server{
		Handler: apiserver.New(apiserver.Options{
			Store: st, Workloads: reg, Proxies: xdsServer, Logger: log.With("component", "api"),
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	errc := make(chan error, 3)
	go func() { errc <- g.Serve(xdsLis) }()
	go func() {
		if err := api.Serve(apiLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	go xdsServer.Run(ctx)
	go func() { errc <- watchResources(ctx, st, xdsServer.Trigger, log) }()
	xdsServer.Trigger()

	log.Info("control plane ready", "xds", xdsLis.Addr().String(), "api", apiLis.Addr().String())
	if opts.Ready != nil {
		opts.Ready(xdsLis.Addr().String(), apiLis.Addr().String())
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
