package jwks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/jwks"
)

func TestFetcher(t *testing.T) {
	var fail atomic.Bool
	var mu sync.Mutex
	body := `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.Write([]byte(body))
	}))
	defer srv.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"nokeys":1}`)) }))
	defer bad.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan struct{}, 16)
	f := jwks.New(ctx, jwks.Options{Refresh: 50 * time.Millisecond, MinBackoff: 10 * time.Millisecond,
		OnChange: func() { changes <- struct{}{} }})
	uri, badURI := srv.URL+"/jwks", bad.URL+"/jwks"
	if got := f.Sync([]string{uri, badURI}); len(got) != 0 {
		t.Fatalf("before any fetch: %v", got)
	}
	wait := func() {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(5 * time.Second):
			t.Fatal("no change reported")
		}
	}
	wait()
	got := f.Sync([]string{uri, badURI})
	if got[uri] != body {
		t.Errorf("fetched %q", got[uri])
	}
	if _, ok := got[badURI]; ok {
		t.Error("a document without keys was accepted")
	}
	// A failing refresh keeps the last good set.
	fail.Store(true)
	time.Sleep(150 * time.Millisecond)
	if got := f.Sync([]string{uri}); got[uri] != body {
		t.Errorf("after failures: %q", got[uri])
	}
	// A new set is picked up and reported.
	mu.Lock()
	body = `{"keys":[]}`
	mu.Unlock()
	fail.Store(false)
	wait()
	if got := f.Sync([]string{uri}); got[uri] != `{"keys":[]}` {
		t.Errorf("after change: %q", got[uri])
	}
	// An unwanted URI is forgotten.
	if got := f.Sync(nil); len(got) != 0 {
		t.Errorf("after Sync(nil): %v", got)
	}
}
