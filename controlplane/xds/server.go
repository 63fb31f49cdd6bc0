package xds

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/registry"
	"github.com/weftmesh/weft/controlplane/xdsconfig"
)

// Defaults of the push debounce.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultMaxDelay = time.Second
)

// Options configure a Server.
type Options struct {
	Registry *registry.Registry
	// Resources returns the current configuration objects' model (without
	// workloads; the server adds them from the registry).
	Resources func(ctx context.Context) (*model.State, error)
	Debounce  time.Duration
	MaxDelay  time.Duration
	Logger    *slog.Logger
	// PeerIdentity, when set, returns the verified workload identity
	// (namespace, identity) of a stream's client certificate; a proxy whose
	// node metadata claims another identity is refused.
	PeerIdentity func(ctx context.Context) (namespace, identity string, err error)
}

// ProxyStatus is what the server knows of one connected proxy.
type ProxyStatus struct {
	NodeID string `json:"node"`
	// Versions pushed, per type URL.
	Versions map[string]string `json:"versions"`
	// Acked versions, per type URL.
	Acked map[string]string `json:"acked"`
	// LastNACK is the error of the last rejected push, if any.
	LastNACK string `json:"lastNack,omitempty"`
}

// Server is the ADS server and pusher. It is safe for concurrent use.
type Server struct {
	opts    Options
	cache   cachev3.SnapshotCache
	ads     serverv3.Server
	trigger chan struct{}

	mu      sync.Mutex
	streams map[int64]string    // stream → node id
	peers   map[int64][2]string // stream → verified namespace, identity
	status  map[string]*ProxyStatus
	pushed  map[string]bool
	pushes  uint64
	problem []string
}

// New builds a Server; call Run to start pushing and Register to serve.
func New(ctx context.Context, opts Options) *Server {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:    opts,
		cache:   cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil),
		trigger: make(chan struct{}, 1),
		streams: map[int64]string{},
		peers:   map[int64][2]string{},
		status:  map[string]*ProxyStatus{},
		pushed:  map[string]bool{},
	}
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc:    s.onOpen,
		StreamRequestFunc: s.onRequest,
		StreamClosedFunc:  s.onClosed,
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.mu.Lock()
			if st := s.status[s.streams[id]]; st != nil {
				st.Versions[resp.GetTypeUrl()] = resp.GetVersionInfo()
			}
			s.mu.Unlock()
		},
	}
	s.ads = serverv3.NewServer(ctx, s.cache, cb)
	return s
}

// Register serves ADS on the gRPC server.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s.ads)
}

// Trigger asks for a push; it never blocks.
func (s *Server) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

func (s *Server) onOpen(ctx context.Context, id int64, _ string) error {
	if s.opts.PeerIdentity == nil {
		return nil
	}
	ns, ident, err := s.opts.PeerIdentity(ctx)
	if err != nil {
		s.opts.Logger.Warn("refusing xDS stream", "stream", id, "error", err)
		return err
	}
	s.mu.Lock()
	s.peers[id] = [2]string{ns, ident}
	s.mu.Unlock()
	return nil
}

func (s *Server) onRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	s.mu.Lock()
	nodeID, known := s.streams[id]
	s.mu.Unlock()
	if !known {
		w, err := WorkloadFromNode(req.GetNode())
		if err != nil {
			s.opts.Logger.Warn("refusing proxy", "stream", id, "error", err)
			return err
		}
		nodeID = w.NodeID()
		if s.opts.PeerIdentity != nil {
			s.mu.Lock()
			peer, ok := s.peers[id]
			s.mu.Unlock()
			if !ok || peer[0] != w.Namespace || peer[1] != w.Identity {
				err := fmt.Errorf("xds: node %s claims identity %s/%s but its certificate is for %s/%s", nodeID, w.Namespace, w.Identity, peer[0], peer[1])
				s.opts.Logger.Warn("refusing proxy", "stream", id, "error", err)
				return err
			}
		}
		s.mu.Lock()
		s.streams[id] = nodeID
		if s.status[nodeID] == nil {
			s.status[nodeID] = &ProxyStatus{NodeID: nodeID, Versions: map[string]string{}, Acked: map[string]string{}}
		}
		s.mu.Unlock()
		if err := s.opts.Registry.Connect(context.Background(), id, w); err != nil {
			return err
		}
	}
	if req.GetResponseNonce() == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status[nodeID]
	if st == nil {
		return nil
	}
	if d := req.GetErrorDetail(); d != nil {
		st.LastNACK = d.GetMessage()
		s.opts.Logger.Warn("proxy rejected config (NACK)", "node", nodeID, "type", req.GetTypeUrl(), "error", d.GetMessage())
	} else {
		st.Acked[req.GetTypeUrl()] = req.GetVersionInfo()
	}
	return nil
}

func (s *Server) onClosed(id int64, _ *corev3.Node) {
	s.mu.Lock()
	nodeID, ok := s.streams[id]
	delete(s.streams, id)
	delete(s.peers, id)
	s.mu.Unlock()
	if ok {
		s.opts.Registry.Disconnect(id)
		s.opts.Logger.Info("proxy stream closed", "node", nodeID, "stream", id)
	}
}

// Run pushes configuration on every trigger until ctx ends.
func (s *Server) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.trigger:
		}
		// Debounce: wait for a quiet period, but no longer than MaxDelay.
		deadline := time.NewTimer(s.opts.MaxDelay)
		quiet := time.NewTimer(s.opts.Debounce)
	wait:
		for {
			select {
			case <-ctx.Done():
				deadline.Stop()
				quiet.Stop()
				return
			case <-s.trigger:
				quiet.Reset(s.opts.Debounce)
			case <-quiet.C:
				break wait
			case <-deadline.C:
				break wait
			}
		}
		deadline.Stop()
		quiet.Stop()
		if err := s.Push(ctx); err != nil {
			s.opts.Logger.Error("push failed; proxies keep their last config", "error", err)
		}
	}
}

// Push builds and sets every connected proxy's snapshot now. Most
// resources are shared by every proxy (routes, endpoints, outbound
// clusters): they are hashed once per push and their cache entries are
// shared, so a push to thousands of proxies costs little more than the
// per-proxy listeners. Snapshots are built on every CPU.
func (s *Server) Push(ctx context.Context) error {
	st, err := s.opts.Resources(ctx)
	if err != nil {
		return fmt.Errorf("xds: read configuration: %w", err)
	}
	st.Workloads = s.opts.Registry.List()
	gen := xdsconfig.NewGeneration(st)
	var nodes []*model.Workload
	for _, w := range st.Workloads {
		if w.Connected {
			nodes = append(nodes, w)
		}
	}
	memo := newHashMemo()
	workers := min(runtime.GOMAXPROCS(0), max(1, len(nodes)/64))
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		mu   sync.Mutex
		live = make(map[string]bool, len(nodes))
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(nodes) {
					return
				}
				w := nodes[i]
				snap, err := memo.snapshot(gen.ForNode(w))
				if err != nil {
					s.opts.Logger.Error("inconsistent snapshot; node keeps its last config", "node", w.NodeID(), "error", err)
					continue
				}
				if err := s.cache.SetSnapshot(ctx, w.NodeID(), snap); err != nil {
					s.opts.Logger.Error("set snapshot", "node", w.NodeID(), "error", err)
					continue
				}
				mu.Lock()
				live[w.NodeID()] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.mu.Lock()
	for id := range s.pushed {
		if !live[id] {
			s.cache.ClearSnapshot(id)
			delete(s.status, id)
		}
	}
	s.pushed = live
	s.pushes++
	s.problem = gen.Problems()
	s.mu.Unlock()
	s.opts.Logger.Debug("pushed configuration", "proxies", len(live))
	return nil
}

// Problems returns what the last push could not honour.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problem...)
}

// Proxies returns the status of every connected proxy.
func (s *Server) Proxies() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.status))
	for _, st := range s.status {
		c := *st
		c.Versions = copyMap(st.Versions)
		c.Acked = copyMap(st.Acked)
		out = append(out, c)
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// hashMemo remembers, for one push, the hash of every resource (resources
// shared by many proxies are the same pointers) and the cache entry of
// every resource list shared by all proxies. Safe for concurrent use.
type hashMemo struct {
	mu     sync.Mutex
	hashes map[types.Resource]uint64
	lists  map[listKey]cachev3.Resources
}

// listKey identifies a resource list by its backing array.
type listKey struct {
	first *types.Resource
	n     int
}

func newHashMemo() *hashMemo {
	return &hashMemo{hashes: map[types.Resource]uint64{}, lists: map[listKey]cachev3.Resources{}}
}

func (m *hashMemo) hash(r types.Resource) (uint64, error) {
	m.mu.Lock()
	h, ok := m.hashes[r]
	m.mu.Unlock()
	if ok {
		return h, nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return 0, err
	}
	f := fnv.New64a()
	f.Write(b)
	h = f.Sum64()
	m.mu.Lock()
	m.hashes[r] = h
	m.mu.Unlock()
	return h, nil
}

// resources returns the cache entry of a resource list: versioned by a hash
// of its resources' hashes, so only changed types are sent.
func (m *hashMemo) resources(items []types.Resource) (cachev3.Resources, error) {
	var key listKey
	if len(items) > 0 {
		key = listKey{&items[0], len(items)}
		m.mu.Lock()
		r, ok := m.lists[key]
		m.mu.Unlock()
		if ok {
			return r, nil
		}
	}
	f := fnv.New64a()
	var buf [8]byte
	for _, r := range items {
		h, err := m.hash(r)
		if err != nil {
			return cachev3.Resources{}, err
		}
		binary.LittleEndian.PutUint64(buf[:], h)
		f.Write(buf[:])
	}
	res := cachev3.NewResources(hex.EncodeToString(f.Sum(nil)), items)
	if key.first != nil {
		m.mu.Lock()
		m.lists[key] = res
		m.mu.Unlock()
	}
	return res, nil
}

// snapshot builds a node's snapshot from its resources.
func (m *hashMemo) snapshot(res xdsconfig.Resources) (*cachev3.Snapshot, error) {
	snap := &cachev3.Snapshot{}
	for typ, items := range res {
		r, err := m.resources(items)
		if err != nil {
			return nil, err
		}
		snap.Resources[cachev3.GetResponseType(typ)] = r
	}
	for _, typ := range []resource.Type{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType, resource.SecretType} {
		if _, ok := res[typ]; !ok {
			snap.Resources[cachev3.GetResponseType(typ)] = cachev3.NewResources("empty", nil)
		}
	}
	if err := snap.Consistent(); err != nil {
		return nil, err
	}
	return snap, nil
}
