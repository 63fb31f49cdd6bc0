package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/bolt"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "weft.db"), bolt.Options{})
	})
}

// open opens a store that is closed when the test ends.
func open(t *testing.T, path string, opts bolt.Options) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func put(t *testing.T, s store.Store, key, value string) int64 {
	t.Helper()
	rev, err := s.Put(t.Context(), key, []byte(value), store.AnyRevision)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return rev
}

func TestRevisionsStartAtOneAndStepByOne(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "weft.db"), bolt.Options{})
	ctx := t.Context()
	if _, rev, err := s.List(ctx, ""); err != nil || rev != 0 {
		t.Fatalf("List on a new store: revision %d, err %v; want 0, nil", rev, err)
	}
	if rev := put(t, s, "a", "1"); rev != 1 {
		t.Fatalf("first Put: revision %d, want 1", rev)
	}
	// Failed writes consume no revision.
	if _, err := s.Put(ctx, "a", []byte("x"), 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Put conflict: err = %v", err)
	}
	if _, err := s.Delete(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete(missing): err = %v", err)
	}
	if rev := put(t, s, "b", "1"); rev != 2 {
		t.Fatalf("second Put: revision %d, want 2", rev)
	}
	if rev, err := s.Delete(ctx, "a"); err != nil || rev != 3 {
		t.Fatalf("Delete: revision %d, err %v; want 3, nil", rev, err)
	}
	if _, rev, err := s.List(ctx, "nothing/"); err != nil || rev != 3 {
		t.Fatalf("List: revision %d, err %v; want 3, nil", rev, err)
	}
}

func TestReopenKeepsDataAndRevision(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	put(t, s, "a", "1")
	rb := put(t, s, "b", "2")
	put(t, s, "c", "3")
	rdel, err := s.Delete(t.Context(), "c")
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path, bolt.Options{})
	kvs, rev, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatalf("List after reopen: %v", err)
	}
	if rev != rdel {
		t.Errorf("revision after reopen = %d, want %d", rev, rdel)
	}
	if len(kvs) != 2 || kvs[0].Key != "a" || kvs[1].Key != "b" || string(kvs[1].Value) != "2" || kvs[1].Revision != rb {
		t.Errorf("List after reopen = %+v", kvs)
	}
	if next := put(t, s, "d", "4"); next != rdel+1 {
		t.Errorf("Put after reopen: revision %d, want %d", next, rdel+1)
	}
}

func TestWatchAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	r1 := put(t, s, "k", "1")
	r2 := put(t, s, "k", "2")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path, bolt.Options{})
	// History does not survive a reopen.
	if ch, err := s.Watch(t.Context(), "", r1); !errors.Is(err, store.ErrCompacted) || ch != nil {
		t.Fatalf("Watch from before the reopen: err = %v, want ErrCompacted and no channel", err)
	}
	ch, err := s.Watch(t.Context(), "", r2)
	if err != nil {
		t.Fatalf("Watch from the revision at reopen: %v", err)
	}
	r3 := put(t, s, "k", "3")
	if ev := <-ch; ev.Type != store.EventPut || ev.KV.Revision != r3 {
		t.Fatalf("event = %+v, want put at %d", ev, r3)
	}
}

func TestWatchBeyondHistory(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "weft.db"), bolt.Options{HistorySize: 4})
	for i := 1; i <= 10; i++ {
		put(t, s, "k", fmt.Sprint(i))
	}
	// Revisions 7..10 are kept, so a watch may start after 6 or later.
	for _, from := range []int64{1, 5} {
		if _, err := s.Watch(t.Context(), "", from); !errors.Is(err, store.ErrCompacted) {
			t.Errorf("Watch from %d: err = %v, want ErrCompacted", from, err)
		}
	}
	ch, err := s.Watch(t.Context(), "", 6)
	if err != nil {
		t.Fatalf("Watch from 6: %v", err)
	}
	for want := int64(7); want <= 10; want++ {
		if ev := <-ch; ev.KV.Revision != want || string(ev.KV.Value) != fmt.Sprint(want) {
			t.Fatalf("replayed %+v, want revision %d", ev, want)
		}
	}
}

func TestSlowWatcherGetsErrFellBehind(t *testing.T) {
	const buffer = 4
	s := open(t, filepath.Join(t.TempDir(), "weft.db"), bolt.Options{WatchBuffer: buffer})
	ch, err := s.Watch(t.Context(), "", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	for i := range 10 {
		put(t, s, "k", fmt.Sprint(i))
	}
	var evs []store.Event
	for ev := range ch {
		evs = append(evs, ev)
	}
	if len(evs) != buffer+1 {
		t.Fatalf("got %d events, want %d and an error", len(evs), buffer)
	}
	if last := evs[buffer]; last.Type != store.EventError || !errors.Is(last.Err, bolt.ErrFellBehind) {
		t.Fatalf("last event = %+v, want EventError with ErrFellBehind", last)
	}
}

func TestReplayDoesNotCountAgainstWatchBuffer(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "weft.db"), bolt.Options{WatchBuffer: 2})
	from := put(t, s, "k", "0")
	for i := 1; i <= 20; i++ {
		put(t, s, "k", fmt.Sprint(i))
	}
	ch, err := s.Watch(t.Context(), "", from)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	put(t, s, "k", "21")
	put(t, s, "k", "22")
	for i := 1; i <= 22; i++ {
		if ev := <-ch; ev.Type != store.EventPut || string(ev.KV.Value) != fmt.Sprint(i) {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.db")
	first, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	start := time.Now()
	second, err := bolt.Open(path, bolt.Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("second Open took %s", elapsed)
	}
	if !errors.Is(err, bolt.ErrLocked) || !strings.Contains(err.Error(), "data dir is in use by another control plane") {
		t.Errorf("second Open: err = %v, want ErrLocked", err)
	}

	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	open(t, path, bolt.Options{LockTimeout: 100 * time.Millisecond})
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.db")
	open(t, path, bolt.Options{})
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("data file mode = %v, want 0600", perm)
	}
}

func TestValuesAreCopied(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "weft.db"), bolt.Options{})
	ctx := t.Context()
	w1, err := s.Watch(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.Watch(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	value := []byte("abc")
	if _, err := s.Put(ctx, "k", value, store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	value[0] = 'X'
	kv, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	kv.Value[1] = 'Y'
	ev := <-w1
	ev.KV.Value[2] = 'Z'
	if kv, _ := s.Get(ctx, "k"); string(kv.Value) != "abc" {
		t.Errorf("stored value = %q, want %q", kv.Value, "abc")
	}
	if ev := <-w2; string(ev.KV.Value) != "abc" {
		t.Errorf("other watcher's value = %q, want %q", ev.KV.Value, "abc")
	}
}

func TestInvalidArguments(t *testing.T) {
	if _, err := bolt.Open(filepath.Join(t.TempDir(), "weft.db"), bolt.Options{WatchBuffer: -1}); err == nil {
		t.Error("Open with a negative option succeeded")
	}
	if _, err := bolt.Open(filepath.Join(t.TempDir(), "missing", "weft.db"), bolt.Options{}); err == nil ||
		!strings.HasPrefix(err.Error(), "store/bolt: ") {
		t.Errorf("Open in a missing directory: err = %v", err)
	}
	s := open(t, filepath.Join(t.TempDir(), "weft.db"), bolt.Options{})
	if _, err := s.Put(t.Context(), "k", nil, -2); err == nil {
		t.Error("Put with expected revision -2 succeeded")
	}
	if _, err := s.Put(t.Context(), "", []byte("v"), store.AnyRevision); err == nil {
		t.Error("Put with an empty key succeeded")
	}
	if _, err := s.Watch(t.Context(), "", -1); err == nil {
		t.Error("Watch from revision -1 succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Put(ctx, "k", nil, store.AnyRevision); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Watch(ctx, "", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch with a canceled context: err = %v, want context.Canceled", err)
	}
}
