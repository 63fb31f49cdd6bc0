// Package storetest is the conformance suite every store.Store
// implementation runs from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// The suite tests only the store.Store contract, plus the choices every
// implementation in this repository makes where the interface leaves room:
//
//   - Watch from a revision the store no longer keeps history for returns
//     store.ErrCompacted synchronously (no channel); ErrCompacted is never
//     delivered as an EventError.
//   - Revisions are only required to increase strictly across the whole
//     store, not by exactly one, so that a store sharing a backend (an etcd
//     cluster) with other writers passes too.
//   - A second Close fails with store.ErrClosed.
//
// An implementation must be opened with a per-watch buffer smaller than
// SlowWatcherWrites and must keep history for at least its last 10 events
// (a watch from an older revision may either replay or fail as above).
package storetest
