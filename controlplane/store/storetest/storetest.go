package storetest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/store"
)

// SlowWatcherWrites is how many events the slow-watcher test writes without
// reading its watch. A store under test must end such a watch with an
// EventError before that many events pile up.
const SlowWatcherWrites = 1000

// waitTimeout bounds every wait for something the contract promises; it is
// only reached when an implementation is broken.
const waitTimeout = 10 * time.Second

// Run runs the conformance suite, one subtest per behaviour. open must
// return a new, empty store for each call and arrange (with t.Cleanup) for
// it to be released; the suite closes some stores itself, so the cleanup
// must ignore store.ErrClosed. Run is safe to call from several tests at
// once if open is.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetPutListDelete", testGetPutListDelete},
		{"GetMissingKey", testGetMissingKey},
		{"DeleteMissingKey", testDeleteMissingKey},
		{"RevisionsIncreaseStoreWide", testRevisionsIncreaseStoreWide},
		{"ListSortedByKey", testListSortedByKey},
		{"ListPrefixIsolation", testListPrefixIsolation},
		{"ConditionalPut", testConditionalPut},
		{"WatchFromNow", testWatchFromNow},
		{"WatchReplaysFromPastRevision", testWatchReplaysFromPastRevision},
		{"WatchFromListRevision", testWatchFromListRevision},
		{"WatchOldRevisionReplaysOrFailsSynchronously", testWatchOldRevision},
		{"WatchDeleteEvent", testWatchDeleteEvent},
		{"WatchPrefixFilter", testWatchPrefixFilter},
		{"WatchCancelClosesWithoutError", testWatchCancel},
		{"SlowWatcherDoesNotBlockWriters", testSlowWatcher},
		{"ConcurrentWriters", testConcurrentWriters},
		{"CloseEndsWatchesAndLaterCalls", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

func testGetPutListDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	rev := mustPut(t, s, "k", "v1", store.AnyRevision)
	checkGet(t, s, "k", "v1", rev)

	rev2 := mustPut(t, s, "k", "v2", store.AnyRevision)
	checkGet(t, s, "k", "v2", rev2)

	kvs, listRev, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkKVs(t, kvs, []store.KV{{Key: "k", Value: []byte("v2"), Revision: rev2}})
	if listRev < rev2 {
		t.Errorf("List revision = %d, want >= %d (the last write)", listRev, rev2)
	}

	delRev, err := s.Delete(ctx, "k")
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if delRev <= rev2 {
		t.Errorf("Delete revision = %d, want > %d", delRev, rev2)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	kvs, listRev, err = s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(kvs) != 0 {
		t.Errorf("List after Delete = %v, want nothing", kvs)
	}
	if listRev < delRev {
		t.Errorf("List revision = %d, want >= %d (the delete)", listRev, delRev)
	}

	// An empty value is a value.
	emptyRev := mustPut(t, s, "empty", "", store.AnyRevision)
	checkGet(t, s, "empty", "", emptyRev)
}

func testGetMissingKey(t *testing.T, s store.Store) {
	if _, err := s.Get(t.Context(), "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(missing): err = %v, want ErrNotFound", err)
	}
	mustPut(t, s, "missing/child", "v", store.AnyRevision)
	if _, err := s.Get(t.Context(), "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(missing) with a key below it: err = %v, want ErrNotFound", err)
	}
}

func testDeleteMissingKey(t *testing.T, s store.Store) {
	if _, err := s.Delete(t.Context(), "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete(missing): err = %v, want ErrNotFound", err)
	}
	mustPut(t, s, "k", "v", store.AnyRevision)
	mustDelete(t, s, "k")
	if _, err := s.Delete(t.Context(), "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: err = %v, want ErrNotFound", err)
	}
}

func testRevisionsIncreaseStoreWide(t *testing.T, s store.Store) {
	var last int64
	for i, key := range []string{"a", "b", "a", "c", "b"} {
		rev := mustPut(t, s, key, fmt.Sprint(i), store.AnyRevision)
		if rev < 1 || rev <= last {
			t.Fatalf("write %d (%s): revision %d, want > %d and >= 1", i, key, rev, last)
		}
		last = rev
		checkGet(t, s, key, fmt.Sprint(i), rev)
	}
	rev := mustDelete(t, s, "c")
	if rev <= last {
		t.Fatalf("Delete: revision %d, want > %d", rev, last)
	}
	// Each key keeps the revision of its own last write.
	kvs, _, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(kvs) != 2 || kvs[0].Revision >= kvs[1].Revision {
		t.Fatalf("List = %v, want a (written before b) and b", kvs)
	}
}

func testListSortedByKey(t *testing.T, s store.Store) {
	keys := []string{"m", "b", "z/1", "a", "z", "b/c", "a/b/c", "y"}
	want := make(map[string]int64)
	for _, k := range keys {
		want[k] = mustPut(t, s, k, "value of "+k, store.AnyRevision)
	}
	kvs, _, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		got = append(got, kv.Key)
		if string(kv.Value) != "value of "+kv.Key || kv.Revision != want[kv.Key] {
			t.Errorf("List: %s = %q at %d, want %q at %d", kv.Key, kv.Value, kv.Revision, "value of "+kv.Key, want[kv.Key])
		}
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	if !slices.Equal(got, sorted) {
		t.Fatalf("List keys = %q, want %q", got, sorted)
	}
}

func testListPrefixIsolation(t *testing.T, s store.Store) {
	for _, k := range []string{"a", "a/1", "a/2", "ab/1", "b/1", "0"} {
		mustPut(t, s, k, k, store.AnyRevision)
	}
	last := mustPut(t, s, "a/3", "a/3", store.AnyRevision)
	tests := []struct {
		prefix string
		want   []string
	}{
		{"a/", []string{"a/1", "a/2", "a/3"}},
		{"a", []string{"a", "a/1", "a/2", "a/3", "ab/1"}},
		{"ab/", []string{"ab/1"}},
		{"b/1", []string{"b/1"}},
		{"c/", nil},
		{"", []string{"0", "a", "a/1", "a/2", "a/3", "ab/1", "b/1"}},
	}
	for _, tt := range tests {
		kvs, rev, err := s.List(t.Context(), tt.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tt.prefix, err)
		}
		var got []string
		for _, kv := range kvs {
			got = append(got, kv.Key)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
		if rev < last {
			t.Errorf("List(%q) revision = %d, want >= %d", tt.prefix, rev, last)
		}
	}
}

func testConditionalPut(t *testing.T, s store.Store) {
	ctx := t.Context()
	created := mustPut(t, s, "k", "v1", 0)
	checkGet(t, s, "k", "v1", created)

	other := mustPut(t, s, "other", "x", store.AnyRevision)

	conflicts := []struct {
		name   string
		key    string
		expect int64
	}{
		{"create existing key", "k", 0},
		{"another key's revision", "k", other},
		{"future revision", "k", other + 100},
		{"revision on missing key", "missing", created},
	}
	for _, c := range conflicts {
		if _, err := s.Put(ctx, c.key, []byte("bad"), c.expect); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: Put(%s, expect %d): err = %v, want ErrConflict", c.name, c.key, c.expect, err)
		}
	}
	// Failed puts change nothing.
	checkGet(t, s, "k", "v1", created)
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(missing) after failed create: err = %v, want ErrNotFound", err)
	}

	updated := mustPut(t, s, "k", "v2", created)
	checkGet(t, s, "k", "v2", updated)
	if _, err := s.Put(ctx, "k", []byte("stale"), created); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Put with the previous revision: err = %v, want ErrConflict", err)
	}
	checkGet(t, s, "k", "v2", updated)

	unconditional := mustPut(t, s, "k", "v3", store.AnyRevision)
	checkGet(t, s, "k", "v3", unconditional)

	// After a delete the key may be created again.
	mustDelete(t, s, "k")
	if _, err := s.Put(ctx, "k", []byte("again"), unconditional); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Put on a deleted key with its old revision: err = %v, want ErrConflict", err)
	}
	recreated := mustPut(t, s, "k", "again", 0)
	checkGet(t, s, "k", "again", recreated)
}

func testWatchFromNow(t *testing.T, s store.Store) {
	mustPut(t, s, "k", "before", store.AnyRevision)
	ch := mustWatch(t, s, t.Context(), "", 0)
	rev := mustPut(t, s, "k", "after", store.AnyRevision)
	checkEvent(t, recv(t, ch), store.EventPut, "k", "after", rev)
	rev = mustPut(t, s, "k2", "next", store.AnyRevision)
	checkEvent(t, recv(t, ch), store.EventPut, "k2", "next", rev)
}

func testWatchReplaysFromPastRevision(t *testing.T, s store.Store) {
	from := mustPut(t, s, "k/a", "1", store.AnyRevision)
	r2 := mustPut(t, s, "k/b", "2", store.AnyRevision)
	r3 := mustDelete(t, s, "k/a")
	r4 := mustPut(t, s, "k/b", "3", store.AnyRevision)

	ch := mustWatch(t, s, t.Context(), "k/", from)
	checkEvent(t, recv(t, ch), store.EventPut, "k/b", "2", r2)
	checkEvent(t, recv(t, ch), store.EventDelete, "k/a", "", r3)
	checkEvent(t, recv(t, ch), store.EventPut, "k/b", "3", r4)

	// Then it continues live.
	r5 := mustPut(t, s, "k/c", "4", store.AnyRevision)
	checkEvent(t, recv(t, ch), store.EventPut, "k/c", "4", r5)

	// Watching from the current revision replays nothing.
	ch2 := mustWatch(t, s, t.Context(), "k/", r5)
	r6 := mustPut(t, s, "k/d", "5", store.AnyRevision)
	checkEvent(t, recv(t, ch2), store.EventPut, "k/d", "5", r6)
}

// testWatchFromListRevision checks the list-then-watch pattern: a watch
// from a listing's revision sees every later change and none before.
func testWatchFromListRevision(t *testing.T, s store.Store) {
	mustPut(t, s, "k/a", "1", store.AnyRevision)
	mustPut(t, s, "k/b", "1", store.AnyRevision)
	_, listRev, err := s.List(t.Context(), "k/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	r1 := mustPut(t, s, "k/a", "2", store.AnyRevision)
	r2 := mustDelete(t, s, "k/b")

	ch := mustWatch(t, s, t.Context(), "k/", listRev)
	checkEvent(t, recv(t, ch), store.EventPut, "k/a", "2", r1)
	checkEvent(t, recv(t, ch), store.EventDelete, "k/b", "", r2)
	r3 := mustPut(t, s, "k/c", "1", store.AnyRevision)
	checkEvent(t, recv(t, ch), store.EventPut, "k/c", "1", r3)
}

// testWatchOldRevision watches from before many writes: a store either
// replays them all or, if it no longer has them, Watch itself returns
// ErrCompacted.
func testWatchOldRevision(t *testing.T, s store.Store) {
	const n = 100
	first := mustPut(t, s, "k", "0", store.AnyRevision)
	revs := make([]int64, n)
	for i := range revs {
		revs[i] = mustPut(t, s, "k", fmt.Sprint(i+1), store.AnyRevision)
	}
	ch, err := s.Watch(t.Context(), "k", first)
	if err != nil {
		if !errors.Is(err, store.ErrCompacted) {
			t.Fatalf("Watch from %d: err = %v, want nil or ErrCompacted", first, err)
		}
		if ch != nil {
			t.Fatal("Watch returned an error and a channel")
		}
		return
	}
	for i, rev := range revs {
		checkEvent(t, recv(t, ch), store.EventPut, "k", fmt.Sprint(i+1), rev)
	}
}

func testWatchDeleteEvent(t *testing.T, s store.Store) {
	mustPut(t, s, "k", "v", store.AnyRevision)
	ch := mustWatch(t, s, t.Context(), "k", 0)
	rev := mustDelete(t, s, "k")
	checkEvent(t, recv(t, ch), store.EventDelete, "k", "", rev)
}

func testWatchPrefixFilter(t *testing.T, s store.Store) {
	ch := mustWatch(t, s, t.Context(), "a/", 0)
	all := mustWatch(t, s, t.Context(), "", 0)
	var writes []store.Event
	for _, k := range []string{"b/1", "a", "ab/1", "a/1", "0", "a/2/x", "a/1"} {
		rev := mustPut(t, s, k, "v", store.AnyRevision)
		writes = append(writes, store.Event{Type: store.EventPut, KV: store.KV{Key: k, Value: []byte("v"), Revision: rev}})
	}
	rev := mustDelete(t, s, "ab/1")
	writes = append(writes, store.Event{Type: store.EventDelete, KV: store.KV{Key: "ab/1", Revision: rev}})
	rev = mustDelete(t, s, "a/1")
	writes = append(writes, store.Event{Type: store.EventDelete, KV: store.KV{Key: "a/1", Revision: rev}})

	for _, w := range writes {
		checkEvent(t, recv(t, all), w.Type, w.KV.Key, string(w.KV.Value), w.KV.Revision)
	}
	// The filtered watch sees the a/ writes in order and nothing between:
	// its next event after them is the sentinel.
	for _, w := range writes {
		if len(w.KV.Key) >= 2 && w.KV.Key[:2] == "a/" {
			checkEvent(t, recv(t, ch), w.Type, w.KV.Key, string(w.KV.Value), w.KV.Revision)
		}
	}
	mustPut(t, s, "b/2", "v", store.AnyRevision)
	sentinel := mustPut(t, s, "a/sentinel", "v", store.AnyRevision)
	checkEvent(t, recv(t, ch), store.EventPut, "a/sentinel", "v", sentinel)
}

func testWatchCancel(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := mustWatch(t, s, ctx, "", 0)
	rev := mustPut(t, s, "k", "1", store.AnyRevision)
	checkEvent(t, recv(t, ch), store.EventPut, "k", "1", rev)

	cancel()
	// Writes after the cancel neither block nor end the watch with an
	// error; events already on their way may still arrive.
	for i := range 10 {
		mustPut(t, s, "k", fmt.Sprint(i), store.AnyRevision)
	}
	for _, ev := range drain(t, ch) {
		if ev.Type == store.EventError {
			t.Fatalf("canceled watch delivered an error event: %v", ev.Err)
		}
	}
}

// testSlowWatcher writes SlowWatcherWrites events while a watch is never
// read: every write must complete, and the watch must hold the events in
// order, then an EventError, then close.
func testSlowWatcher(t *testing.T, s store.Store) {
	ch := mustWatch(t, s, t.Context(), "", 0)
	// A live watch that keeps up must not be disturbed by the slow one.
	fast := mustWatch(t, s, t.Context(), "", 0)
	fastDone := make(chan []store.Event, 1)
	go func() {
		var evs []store.Event
		for ev := range fast {
			evs = append(evs, ev)
			if len(evs) == SlowWatcherWrites || ev.Type == store.EventError {
				break
			}
		}
		fastDone <- evs
	}()

	revs := make([]int64, SlowWatcherWrites)
	writesDone := make(chan error, 1)
	go func() {
		for i := range revs {
			rev, err := s.Put(t.Context(), "k", []byte(fmt.Sprint(i)), store.AnyRevision)
			if err != nil {
				writesDone <- fmt.Errorf("Put %d: %w", i, err)
				return
			}
			revs[i] = rev
		}
		writesDone <- nil
	}()
	select {
	case err := <-writesDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("%d writes did not finish within %s: a slow watcher blocks writers", SlowWatcherWrites, waitTimeout)
	}

	evs := drain(t, ch)
	if len(evs) == 0 || evs[len(evs)-1].Type != store.EventError {
		t.Fatalf("slow watch got %d events and no final EventError", len(evs))
	}
	last := evs[len(evs)-1]
	if last.Err == nil {
		t.Error("final EventError has a nil Err")
	}
	if errors.Is(last.Err, store.ErrCompacted) || errors.Is(last.Err, store.ErrClosed) {
		t.Errorf("final EventError = %v, want a fell-behind error", last.Err)
	}
	if len(evs)-1 >= SlowWatcherWrites {
		t.Fatalf("slow watch got all %d events before failing", SlowWatcherWrites)
	}
	for i, ev := range evs[:len(evs)-1] {
		checkEvent(t, ev, store.EventPut, "k", fmt.Sprint(i), revs[i])
	}

	var fastEvs []store.Event
	select {
	case fastEvs = <-fastDone:
	case <-time.After(waitTimeout):
		t.Fatal("a watch that keeps up did not get every event")
	}
	if len(fastEvs) != SlowWatcherWrites {
		t.Fatalf("a watch that keeps up got %d events, want %d (last: %+v)", len(fastEvs), SlowWatcherWrites, fastEvs[len(fastEvs)-1])
	}
	for i, ev := range fastEvs {
		checkEvent(t, ev, store.EventPut, "k", fmt.Sprint(i), revs[i])
	}
}

// testConcurrentWriters writes from several goroutines (run it with -race):
// every write gets its own revision, and a watch sees the writes in
// revision order.
func testConcurrentWriters(t *testing.T, s store.Store) {
	const writers, perWriter = 8, 25
	ch := mustWatch(t, s, t.Context(), "", 0)
	type write struct {
		key, value string
		deleted    bool
	}
	var (
		mu     sync.Mutex
		byRev  = make(map[int64]write)
		wg     sync.WaitGroup
		errsMu sync.Mutex
		errs   []error
	)
	record := func(rev int64, w write) {
		mu.Lock()
		defer mu.Unlock()
		if prev, dup := byRev[rev]; dup {
			errsMu.Lock()
			errs = append(errs, fmt.Errorf("revision %d given to both %+v and %+v", rev, prev, w))
			errsMu.Unlock()
		}
		byRev[rev] = w
	}
	fail := func(err error) {
		errsMu.Lock()
		defer errsMu.Unlock()
		errs = append(errs, err)
	}
	for g := range writers {
		wg.Go(func() {
			own := fmt.Sprintf("w%d", g)
			for i := range perWriter {
				// Each writer updates its own key and a shared one, and
				// deletes its own key now and then.
				key, value := own, fmt.Sprint(i)
				if i%2 == 1 {
					key = "shared"
					value = fmt.Sprintf("%s-%d", own, i)
				}
				if i%5 == 4 {
					rev, err := s.Delete(t.Context(), own)
					if err != nil {
						fail(fmt.Errorf("Delete(%s): %w", own, err))
						return
					}
					record(rev, write{key: own, deleted: true})
					continue
				}
				rev, err := s.Put(t.Context(), key, []byte(value), store.AnyRevision)
				if err != nil {
					fail(fmt.Errorf("Put(%s): %w", key, err))
					return
				}
				record(rev, write{key: key, value: value})
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	if len(byRev) != writers*perWriter {
		t.Fatalf("%d distinct revisions for %d writes", len(byRev), writers*perWriter)
	}

	var last int64
	for range writers * perWriter {
		ev := recv(t, ch)
		if ev.Type == store.EventError {
			t.Fatalf("watch ended: %v", ev.Err)
		}
		if ev.KV.Revision <= last {
			t.Fatalf("event at revision %d after %d: watch out of revision order", ev.KV.Revision, last)
		}
		last = ev.KV.Revision
		w, ok := byRev[ev.KV.Revision]
		if !ok {
			t.Fatalf("event at revision %d that no write returned", ev.KV.Revision)
		}
		wantType := store.EventPut
		if w.deleted {
			wantType = store.EventDelete
		}
		checkEvent(t, ev, wantType, w.key, w.value, ev.KV.Revision)
	}

	// The final state is the last write to each key.
	kvs, _, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	lastWrite := make(map[string]int64)
	for rev, w := range byRev {
		lastWrite[w.key] = max(lastWrite[w.key], rev)
	}
	var want []store.KV
	for key, rev := range lastWrite {
		if w := byRev[rev]; !w.deleted {
			want = append(want, store.KV{Key: key, Value: []byte(w.value), Revision: rev})
		}
	}
	slices.SortFunc(want, func(a, b store.KV) int { return cmp.Compare(a.Key, b.Key) })
	checkKVs(t, kvs, want)
}

func testClose(t *testing.T, s store.Store) {
	ctx := t.Context()
	rev := mustPut(t, s, "k", "v", store.AnyRevision)
	ch := mustWatch(t, s, ctx, "", 0)
	quiet := mustWatch(t, s, ctx, "other/", 0)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, ch := range map[string]<-chan store.Event{"watch": ch, "idle watch": quiet} {
		evs := drain(t, ch)
		if len(evs) != 1 || evs[0].Type != store.EventError || !errors.Is(evs[0].Err, store.ErrClosed) {
			t.Errorf("%s after Close got %+v, want one EventError with ErrClosed", name, evs)
		}
	}

	calls := map[string]func() error{
		"Get":        func() error { _, err := s.Get(ctx, "k"); return err },
		"List":       func() error { _, _, err := s.List(ctx, ""); return err },
		"Put":        func() error { _, err := s.Put(ctx, "k", []byte("v"), store.AnyRevision); return err },
		"PutIfMatch": func() error { _, err := s.Put(ctx, "k", []byte("v"), rev); return err },
		"Delete":     func() error { _, err := s.Delete(ctx, "k"); return err },
		"Watch": func() error {
			ch, err := s.Watch(ctx, "", 0)
			if err == nil && ch == nil {
				return errors.New("nil channel and nil error")
			}
			return err
		},
		"Close": s.Close,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

func mustPut(t *testing.T, s store.Store, key, value string, expect int64) int64 {
	t.Helper()
	rev, err := s.Put(t.Context(), key, []byte(value), expect)
	if err != nil {
		t.Fatalf("Put(%q, %q, %d): %v", key, value, expect, err)
	}
	return rev
}

func mustDelete(t *testing.T, s store.Store, key string) int64 {
	t.Helper()
	rev, err := s.Delete(t.Context(), key)
	if err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
	return rev
}

func mustWatch(t *testing.T, s store.Store, ctx context.Context, prefix string, from int64) <-chan store.Event {
	t.Helper()
	ch, err := s.Watch(ctx, prefix, from)
	if err != nil {
		t.Fatalf("Watch(%q, %d): %v", prefix, from, err)
	}
	return ch
}

func checkGet(t *testing.T, s store.Store, key, value string, rev int64) {
	t.Helper()
	kv, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if kv.Key != key || string(kv.Value) != value || kv.Revision != rev {
		t.Fatalf("Get(%q) = {%q %q %d}, want {%q %q %d}", key, kv.Key, kv.Value, kv.Revision, key, value, rev)
	}
}

func checkKVs(t *testing.T, got, want []store.KV) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b store.KV) bool {
		return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.Revision == b.Revision
	}) {
		t.Fatalf("got %s, want %s", formatKVs(got), formatKVs(want))
	}
}

func formatKVs(kvs []store.KV) string {
	var b bytes.Buffer
	for _, kv := range kvs {
		fmt.Fprintf(&b, "{%q %q %d}", kv.Key, kv.Value, kv.Revision)
	}
	return "[" + b.String() + "]"
}

func checkEvent(t *testing.T, ev store.Event, typ store.EventType, key, value string, rev int64) {
	t.Helper()
	if ev.Type == store.EventError {
		t.Fatalf("got EventError (%v), want event %d on %q at %d", ev.Err, typ, key, rev)
	}
	if ev.Type != typ || ev.KV.Key != key || string(ev.KV.Value) != value || ev.KV.Revision != rev || ev.Err != nil {
		t.Fatalf("got event {%d %q %q %d %v}, want {%d %q %q %d}",
			ev.Type, ev.KV.Key, ev.KV.Value, ev.KV.Revision, ev.Err, typ, key, value, rev)
	}
}

// recv returns the next event, failing if the channel closes or nothing
// arrives within waitTimeout.
func recv(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed, want an event")
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no watch event within %s", waitTimeout)
		return store.Event{}
	}
}

// drain reads until the channel closes, failing if it does not close
// within waitTimeout.
func drain(t *testing.T, ch <-chan store.Event) []store.Event {
	t.Helper()
	var evs []store.Event
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		case <-timeout:
			t.Fatalf("watch channel not closed within %s (%d events read)", waitTimeout, len(evs))
			return nil
		}
	}
}
