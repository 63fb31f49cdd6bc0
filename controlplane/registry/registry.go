// Package registry keeps the mesh's workloads: every proxy registers its
// workload when its ADS stream opens and stays registered while the stream
// lives. When a proxy goes away its workload is kept for a grace period
// (marked disconnected) so a restart does not flap endpoints, then removed.
//
// Registrations are persisted in the store, so a restarted control plane
// starts with the workloads it had (each disconnected, with a fresh grace
// period) instead of pushing empty endpoint sets while proxies reconnect.
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/store"
)

// Prefix is the store prefix of persisted registrations.
const Prefix = "/registry/"

// DefaultGrace is how long a workload stays after its proxy disconnects.
const DefaultGrace = 15 * time.Second

// Options configure a Registry.
type Options struct {
	Store store.Store
	// Grace is how long a disconnected workload is kept (DefaultGrace if 0).
	Grace  time.Duration
	Logger *slog.Logger
	// OnChange is called (without locks held) after any change. It must
	// not block.
	OnChange func()
}

type entry struct {
	w       *model.Workload
	streams map[int64]bool
	timer   *time.Timer
}

// Registry is the set of registered workloads. It is safe for concurrent
// use; no method blocks on the network except through the store.
type Registry struct {
	opts     Options
	mu       sync.Mutex
	entries  map[string]*entry // key: namespace/name
	byStream map[int64]string
	closed   bool
}

// New returns an empty registry; call Load to restore persisted workloads.
func New(opts Options) *Registry {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.OnChange == nil {
		opts.OnChange = func() {}
	}
	return &Registry{opts: opts, entries: map[string]*entry{}, byStream: map[int64]string{}}
}

func key(namespace, name string) string { return namespace + "/" + name }

// Load restores persisted workloads as disconnected, each with a full grace
// period to reconnect.
func (r *Registry) Load(ctx context.Context) error {
	kvs, _, err := r.opts.Store.List(ctx, Prefix)
	if err != nil {
		return fmt.Errorf("registry: load: %w", err)
	}
	r.mu.Lock()
	for _, kv := range kvs {
		var w model.Workload
		if err := json.Unmarshal(kv.Value, &w); err != nil {
			r.opts.Logger.Warn("skipping unreadable registration", "key", kv.Key, "error", err)
			continue
		}
		w.Connected = false
		k := key(w.Namespace, w.Name)
		if _, ok := r.entries[k]; ok {
			continue
		}
		e := &entry{w: &w, streams: map[int64]bool{}}
		r.entries[k] = e
		r.expireLocked(k, e)
	}
	r.mu.Unlock()
	r.opts.Logger.Info("restored registrations", "workloads", len(kvs))
	r.opts.OnChange()
	return nil
}

// Connect registers (or refreshes) the workload behind an ADS stream.
func (r *Registry) Connect(ctx context.Context, streamID int64, w *model.Workload) error {
	w = w.Clone()
	w.Connected = true
	k := key(w.Namespace, w.Name)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("registry: closed")
	}
	if old, ok := r.byStream[streamID]; ok && old != k {
		r.mu.Unlock()
		return fmt.Errorf("registry: stream %d already registered %s, cannot switch to %s", streamID, old, k)
	}
	e := r.entries[k]
	if e == nil {
		e = &entry{streams: map[int64]bool{}}
		r.entries[k] = e
	}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	changed := e.w == nil || !sameWorkload(e.w, w)
	e.w = w
	e.streams[streamID] = true
	r.byStream[streamID] = k
	r.mu.Unlock()
	if changed {
		if err := r.persist(ctx, w); err != nil {
			return err
		}
		r.opts.Logger.Info("workload registered", "workload", k, "address", w.Address, "stream", streamID)
	}
	r.opts.OnChange()
	return nil
}

// Disconnect ends a stream's registration; once no stream holds the
// workload it is removed after the grace period.
func (r *Registry) Disconnect(streamID int64) {
	r.mu.Lock()
	k, ok := r.byStream[streamID]
	if !ok {
		r.mu.Unlock()
		return
	}
	delete(r.byStream, streamID)
	e := r.entries[k]
	delete(e.streams, streamID)
	if len(e.streams) > 0 || r.closed {
		r.mu.Unlock()
		return
	}
	w := e.w.Clone()
	w.Connected = false
	e.w = w
	r.expireLocked(k, e)
	r.mu.Unlock()
	r.opts.Logger.Info("workload disconnected", "workload", k, "grace", r.opts.Grace)
	r.opts.OnChange()
}

func (r *Registry) expireLocked(k string, e *entry) {
	e.timer = time.AfterFunc(r.opts.Grace, func() {
		r.mu.Lock()
		cur := r.entries[k]
		if cur != e || len(e.streams) > 0 || r.closed {
			r.mu.Unlock()
			return
		}
		delete(r.entries, k)
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := r.opts.Store.Delete(ctx, Prefix+k); err != nil && err != store.ErrNotFound {
			r.opts.Logger.Warn("could not delete registration", "workload", k, "error", err)
		}
		r.opts.Logger.Info("workload removed after grace period", "workload", k)
		r.opts.OnChange()
	})
}

func (r *Registry) persist(ctx context.Context, w *model.Workload) error {
	stored := w.Clone()
	stored.Connected = false
	b, err := json.Marshal(stored)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if _, err := r.opts.Store.Put(ctx, Prefix+key(w.Namespace, w.Name), b, store.AnyRevision); err != nil {
		return fmt.Errorf("registry: persist %s: %w", key(w.Namespace, w.Name), err)
	}
	return nil
}

// Identity returns the identity and address a workload registered with,
// and whether it is registered.
func (r *Registry) Identity(namespace, name string) (identity, address string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[key(namespace, name)]
	if e == nil {
		return "", "", false
	}
	return e.w.Identity, e.w.Address, true
}

// List returns copies of every workload, sorted by namespace and name.
func (r *Registry) List() []*model.Workload {
	r.mu.Lock()
	out := make([]*model.Workload, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e.w.Clone())
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Close stops every grace timer. Registrations stay persisted.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, e := range r.entries {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
}

func sameWorkload(a, b *model.Workload) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
