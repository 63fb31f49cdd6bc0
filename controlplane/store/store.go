// Package store holds the control plane's persistent state behind one small
// interface: keys and values with revisions, and watches. The embedded
// default is bbolt (package store/bolt); etcd serves highly available
// control planes. Both pass the same conformance suite (store/storetest).
package store

import (
	"context"
	"errors"
)

// Errors every implementation returns (wrapped or not; test with errors.Is).
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a conditional Put found another revision than expected.
	ErrConflict = errors.New("store: revision conflict")
	// ErrCompacted: a watch asked for history older than the store keeps;
	// list again and watch from the list's revision.
	ErrCompacted = errors.New("store: revision compacted")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// AnyRevision makes Put unconditional.
const AnyRevision int64 = -1

// KV is a key, its value and the store revision that last modified it.
type KV struct {
	Key      string
	Value    []byte
	Revision int64
}

// EventType says what happened to a key.
type EventType int

const (
	EventPut EventType = iota + 1
	EventDelete
	// EventError ends a watch: Err says why (ErrCompacted, ErrClosed, or the
	// watcher fell behind). The channel is closed after it.
	EventError
)

// Event is one change seen by a watch. For EventDelete, KV.Value is empty
// and KV.Revision is the revision of the delete.
type Event struct {
	Type EventType
	KV   KV
	Err  error
}

// Store is a revisioned key/value store. Revisions are store-wide,
// start at 1 and grow by one with every Put or Delete. All methods are safe
// for concurrent use.
type Store interface {
	// Get returns the key's current value, or ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// List returns every key with the prefix, sorted by key, and the store
	// revision the listing reflects.
	List(ctx context.Context, prefix string) ([]KV, int64, error)
	// Put writes the value and returns the new revision. expectRevision is
	// AnyRevision (unconditional), 0 (the key must not exist) or the
	// key's current revision; otherwise it fails with ErrConflict.
	Put(ctx context.Context, key string, value []byte, expectRevision int64) (int64, error)
	// Delete removes the key and returns the new revision, or ErrNotFound.
	Delete(ctx context.Context, key string) (int64, error)
	// Watch streams, in order, every change to keys with the prefix made
	// after revision fromRevision (0 means from now). The channel is closed
	// when ctx ends (without an error event) or after an EventError. A
	// watcher that does not keep up gets an EventError rather than blocking
	// writers.
	Watch(ctx context.Context, prefix string, fromRevision int64) (<-chan Event, error)
	// Close releases the store; later calls fail with ErrClosed.
	Close() error
}
