// Package bolt is the control plane's embedded store: a store.Store kept in
// one bbolt file under the control plane's data dir.
//
// Keys live in one bucket, each value prefixed by the store revision that
// last modified it; the store-wide revision lives in a meta bucket and
// survives a reopen. Writes are serialised: each Put or Delete is one bbolt
// transaction that bumps the revision, and its event is published to the
// watches after the transaction commits and before the next write starts, so
// watches see events in revision order.
//
// Watches are served from memory. A bounded history of the most recent
// events (Options.HistorySize) lets a watch start from a past revision; a
// watch from a revision older than that history, or older than the revision
// the file had when it was opened, fails synchronously: Watch returns
// store.ErrCompacted and no channel. The caller lists again and watches from
// the list's revision.
//
// Each watch has a bounded channel (Options.WatchBuffer events beyond any
// replayed history). Writers never block on a watch: when a watch's channel
// is full, it receives an EventError wrapping ErrFellBehind and is closed.
//
// Only one process may open the file: a second Open fails after
// Options.LockTimeout with an error wrapping ErrLocked.
package bolt
