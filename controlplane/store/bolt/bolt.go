package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/weftmesh/weft/controlplane/store"
)

// Defaults used for zero Options fields.
const (
	DefaultHistorySize = 4096
	DefaultWatchBuffer = 256
	DefaultLockTimeout = time.Second
)

// fileMode is the mode a new data file is created with: the store may hold
// secrets, so only the control plane's user may read it.
const fileMode = 0o600

var (
	// ErrLocked is returned by Open when another process (or another Store
	// in this process) holds the data file.
	ErrLocked = errors.New("store/bolt: data dir is in use by another control plane")
	// ErrFellBehind ends a watch whose channel filled up because its reader
	// did not keep up. The reader should list again and watch from the
	// list's revision.
	ErrFellBehind = errors.New("store/bolt: watcher fell behind")
)

var (
	bucketKV   = []byte("kv")
	bucketMeta = []byte("meta")
	keyRev     = []byte("revision")
)

// revLen is the size of the big-endian revision that prefixes every stored
// value and is the meta revision's whole value.
const revLen = 8

// Options tunes a Store. The zero value gives the defaults.
type Options struct {
	// HistorySize is how many of the most recent events are kept in memory
	// so that a watch can start from a past revision. Zero means
	// DefaultHistorySize. The history holds the events' values, so it costs
	// up to HistorySize values of memory.
	HistorySize int
	// WatchBuffer is how many undelivered events a watch may hold before it
	// fails with ErrFellBehind. Zero means DefaultWatchBuffer.
	WatchBuffer int
	// LockTimeout is how long Open waits for another holder of the data
	// file to let go before failing with ErrLocked. Zero means
	// DefaultLockTimeout.
	LockTimeout time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.HistorySize < 0 || o.WatchBuffer < 0 || o.LockTimeout < 0 {
		return o, errors.New("store/bolt: negative option")
	}
	if o.HistorySize == 0 {
		o.HistorySize = DefaultHistorySize
	}
	if o.WatchBuffer == 0 {
		o.WatchBuffer = DefaultWatchBuffer
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	return o, nil
}

// Store is a store.Store in a bbolt file. All methods are safe for
// concurrent use. Get and List run concurrently with each other and with a
// write; Put and Delete are serialised and block for the duration of one
// bbolt commit (including its fsync). No method blocks on a watch's reader.
type Store struct {
	db   *bbolt.DB
	opts Options

	// life is held shared by every call and exclusively by Close, so that
	// Close waits for calls in flight and later calls see closed.
	life   sync.RWMutex
	closed bool // guarded by life

	// mu serialises writes and guards the fields below, so that an event
	// is published to every watch before the next revision is written.
	mu       sync.Mutex
	rev      int64 // current store revision
	oldest   int64 // every event after this revision is in hist
	hist     history
	watchers map[*watcher]struct{}
}

var _ store.Store = (*Store)(nil)

// Open opens the store in the bbolt file at path, creating the file (mode
// 0600, not its directory) if needed. If another Store holds the file, Open
// waits up to Options.LockTimeout and then fails with an error wrapping
// ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	db, err := bbolt.Open(path, fileMode, &bbolt.Options{
		Timeout:      opts.LockTimeout,
		FreelistType: bbolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is locked (waited %s)", ErrLocked, path, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	var rev int64
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketKV); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		rev, err = readRev(meta)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	return &Store{
		db:       db,
		opts:     opts,
		rev:      rev,
		oldest:   rev,
		hist:     history{buf: make([]store.Event, opts.HistorySize)},
		watchers: make(map[*watcher]struct{}),
	}, nil
}

// enter fails if ctx has ended or the store is closed; otherwise it holds
// s.life shared, and the caller must release it with s.life.RUnlock.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return store.ErrClosed
	}
	return nil
}

// Get returns the key's current value and mod revision, or an error
// wrapping store.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	if err := s.enter(ctx); err != nil {
		return store.KV{}, fmt.Errorf("store/bolt: get %q: %w", key, err)
	}
	defer s.life.RUnlock()
	var kv store.KV
	err := s.db.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bucketKV).Get([]byte(key))
		if raw == nil {
			return store.ErrNotFound
		}
		var err error
		kv, err = decodeKV(key, raw)
		return err
	})
	if err != nil {
		return store.KV{}, fmt.Errorf("store/bolt: get %q: %w", key, err)
	}
	return kv, nil
}

// List returns every key with the prefix, sorted by key, and the store
// revision the listing reflects: a watch from that revision sees exactly
// the changes made after the listing.
func (s *Store) List(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	if err := s.enter(ctx); err != nil {
		return nil, 0, fmt.Errorf("store/bolt: list %q: %w", prefix, err)
	}
	defer s.life.RUnlock()
	var (
		kvs []store.KV
		rev int64
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		if rev, err = readRev(tx.Bucket(bucketMeta)); err != nil {
			return err
		}
		p := []byte(prefix)
		c := tx.Bucket(bucketKV).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			kv, err := decodeKV(string(k), v)
			if err != nil {
				return err
			}
			kvs = append(kvs, kv)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store/bolt: list %q: %w", prefix, err)
	}
	return kvs, rev, nil
}

// Put writes the value and returns the new revision. expectRevision is
// store.AnyRevision, 0 (the key must not exist) or the key's current
// revision; otherwise Put fails with an error wrapping store.ErrConflict and
// changes nothing. Put keeps its own copy of value.
func (s *Store) Put(ctx context.Context, key string, value []byte, expectRevision int64) (int64, error) {
	if expectRevision < store.AnyRevision {
		return 0, fmt.Errorf("store/bolt: put %q: invalid expected revision %d", key, expectRevision)
	}
	value = bytes.Clone(value)
	rev, err := s.write(ctx, func(kvb *bbolt.Bucket, rev int64) error {
		if expectRevision != store.AnyRevision {
			var cur int64 // 0: the key does not exist
			if raw := kvb.Get([]byte(key)); raw != nil {
				kv, err := decodeKV(key, raw)
				if err != nil {
					return err
				}
				cur = kv.Revision
			}
			if cur != expectRevision {
				return fmt.Errorf("expected revision %d, found %d: %w", expectRevision, cur, store.ErrConflict)
			}
		}
		return kvb.Put([]byte(key), encodeValue(rev, value))
	}, func(rev int64) store.Event {
		return store.Event{Type: store.EventPut, KV: store.KV{Key: key, Value: value, Revision: rev}}
	})
	if err != nil {
		return 0, fmt.Errorf("store/bolt: put %q: %w", key, err)
	}
	return rev, nil
}

// Delete removes the key and returns the new revision, or fails with an
// error wrapping store.ErrNotFound and changes nothing.
func (s *Store) Delete(ctx context.Context, key string) (int64, error) {
	rev, err := s.write(ctx, func(kvb *bbolt.Bucket, _ int64) error {
		if kvb.Get([]byte(key)) == nil {
			return store.ErrNotFound
		}
		return kvb.Delete([]byte(key))
	}, func(rev int64) store.Event {
		return store.Event{Type: store.EventDelete, KV: store.KV{Key: key, Revision: rev}}
	})
	if err != nil {
		return 0, fmt.Errorf("store/bolt: delete %q: %w", key, err)
	}
	return rev, nil
}

// write runs change in one bbolt transaction that also bumps the store
// revision, then publishes the event for the new revision. An error from
// change rolls the transaction back and leaves the revision alone.
func (s *Store) write(ctx context.Context, change func(kv *bbolt.Bucket, rev int64) error, event func(rev int64) store.Event) (int64, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.life.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	rev := s.rev + 1
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := change(tx.Bucket(bucketKV), rev); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyRev, binary.BigEndian.AppendUint64(nil, uint64(rev)))
	})
	if err != nil {
		return 0, err
	}
	s.rev = rev
	s.publishLocked(event(rev))
	return rev, nil
}

// publishLocked records a committed event in the history and hands it to
// every matching watch. s.mu must be held.
func (s *Store) publishLocked(ev store.Event) {
	if evicted, ok := s.hist.push(ev); ok {
		s.oldest = evicted.KV.Revision
	}
	for w := range s.watchers {
		if ev.KV.Revision > w.after && strings.HasPrefix(ev.KV.Key, w.prefix) {
			s.sendLocked(w, ev)
		}
	}
}

// Watch streams, in revision order, every change to keys with the prefix
// made after fromRevision (0 means from now). If fromRevision is older than
// the in-memory history (or than the revision the file had when it was
// opened), Watch returns an error wrapping store.ErrCompacted and no
// channel; it never delivers ErrCompacted on the channel.
//
// The channel is closed when ctx ends (without an error event), and after an
// EventError: store.ErrClosed when the Store is closed, ErrFellBehind when
// the reader let Options.WatchBuffer events pile up. Events replayed from
// history do not count against WatchBuffer. Watch waits at most for a write
// in flight; writers never wait for the channel's reader.
func (s *Store) Watch(ctx context.Context, prefix string, fromRevision int64) (<-chan store.Event, error) {
	if fromRevision < 0 {
		return nil, fmt.Errorf("store/bolt: watch %q: invalid revision %d", prefix, fromRevision)
	}
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("store/bolt: watch %q: %w", prefix, err)
	}
	defer s.life.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()

	var replay []store.Event
	after := max(fromRevision, s.rev)
	if fromRevision != 0 && fromRevision < s.rev {
		if fromRevision < s.oldest {
			return nil, fmt.Errorf("store/bolt: watch %q from revision %d (oldest kept is %d): %w",
				prefix, fromRevision, s.oldest, store.ErrCompacted)
		}
		// The history holds revisions oldest+1 .. rev, one event each.
		for i := int(fromRevision - s.oldest); i < s.hist.len(); i++ {
			if ev := s.hist.at(i); strings.HasPrefix(ev.KV.Key, prefix) {
				replay = append(replay, ev)
			}
		}
	}

	// One slot beyond the buffer is kept free for the final EventError.
	w := &watcher{
		prefix: prefix,
		after:  after,
		ch:     make(chan store.Event, len(replay)+s.opts.WatchBuffer+1),
	}
	for _, ev := range replay {
		w.ch <- copyEvent(ev)
	}
	s.watchers[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.endLocked(w, nil)
	})
	return w.ch, nil
}

// Close ends every watch with an EventError wrapping store.ErrClosed, waits
// for calls in flight and closes the file. Later calls, including Close,
// fail with store.ErrClosed.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return fmt.Errorf("store/bolt: close: %w", store.ErrClosed)
	}
	s.closed = true
	s.mu.Lock()
	for w := range s.watchers {
		s.endLocked(w, fmt.Errorf("store/bolt: %w", store.ErrClosed))
	}
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store/bolt: close: %w", err)
	}
	return nil
}

// watcher is one watch. Its fields are guarded by Store.mu; the channel is
// only sent to and closed with Store.mu held, so a send can never follow
// the close.
type watcher struct {
	prefix string
	after  int64 // deliver only events after this revision
	ch     chan store.Event
	stop   func() bool // stops the ctx.Done hook
	done   bool
}

// sendLocked delivers ev to w, or ends w with ErrFellBehind if its buffer is
// full. It never blocks: w.ch always has a free slot for the final event.
func (s *Store) sendLocked(w *watcher, ev store.Event) {
	if len(w.ch) >= cap(w.ch)-1 {
		s.endLocked(w, ErrFellBehind)
		return
	}
	w.ch <- copyEvent(ev)
}

// endLocked removes w and closes its channel, first sending an EventError
// if err is not nil. It is a no-op for an ended watcher.
func (s *Store) endLocked(w *watcher, err error) {
	if w.done {
		return
	}
	w.done = true
	delete(s.watchers, w)
	if w.stop != nil {
		w.stop()
	}
	if err != nil {
		w.ch <- store.Event{Type: store.EventError, Err: err}
	}
	close(w.ch)
}

// copyEvent gives each watch its own copy of the value, so that a reader
// that modifies it affects neither the history nor other readers.
func copyEvent(ev store.Event) store.Event {
	ev.KV.Value = bytes.Clone(ev.KV.Value)
	return ev
}

// history is a ring of the most recent events, oldest first.
type history struct {
	buf   []store.Event
	start int // index in buf of the oldest event
	n     int
}

func (h *history) len() int { return h.n }

func (h *history) at(i int) store.Event { return h.buf[(h.start+i)%len(h.buf)] }

// push appends ev, returning the event it evicted, if any.
func (h *history) push(ev store.Event) (evicted store.Event, ok bool) {
	if h.n < len(h.buf) {
		h.buf[(h.start+h.n)%len(h.buf)] = ev
		h.n++
		return store.Event{}, false
	}
	evicted = h.buf[h.start]
	h.buf[h.start] = ev
	h.start = (h.start + 1) % len(h.buf)
	return evicted, true
}

func readRev(meta *bbolt.Bucket) (int64, error) {
	raw := meta.Get(keyRev)
	if raw == nil {
		return 0, nil
	}
	if len(raw) != revLen {
		return 0, fmt.Errorf("corrupt store revision (%d bytes)", len(raw))
	}
	return int64(binary.BigEndian.Uint64(raw)), nil
}

func encodeValue(rev int64, value []byte) []byte {
	out := make([]byte, revLen, revLen+len(value))
	binary.BigEndian.PutUint64(out, uint64(rev))
	return append(out, value...)
}

// decodeKV copies a stored value out of bbolt's memory, which is only valid
// during the transaction.
func decodeKV(key string, raw []byte) (store.KV, error) {
	if len(raw) < revLen {
		return store.KV{}, fmt.Errorf("corrupt value for key %q (%d bytes)", key, len(raw))
	}
	return store.KV{
		Key:      key,
		Value:    bytes.Clone(raw[revLen:]),
		Revision: int64(binary.BigEndian.Uint64(raw[:revLen])),
	}, nil
}
