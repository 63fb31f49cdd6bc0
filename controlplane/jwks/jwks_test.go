package jwks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
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
	const next = `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`
	mu.Lock()
	body = next
	mu.Unlock()
	fail.Store(false)
	wait()
	if got := f.Sync([]string{uri}); got[uri] != next {
		t.Errorf("after change: %q", got[uri])
	}
	// An unwanted URI is forgotten.
	if got := f.Sync(nil); len(got) != 0 {
		t.Errorf("after Sync(nil): %v", got)
	}
}

// TestFetcherState follows one URI through down, up and down again: the
// state says why and since when it fails, the last good set is kept and
// served, and failures never call OnChange.
func TestFetcherState(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	const body = `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"oct","k":"AA"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(body))
	}))
	defer srv.Close()
	uri := srv.URL + "/jwks"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var changes atomic.Int32
	f := jwks.New(ctx, jwks.Options{Refresh: 20 * time.Millisecond, MinBackoff: 5 * time.Millisecond,
		OnChange: func() { changes.Add(1) }})
	if _, ok := f.State(uri); ok {
		t.Fatal("a URI never synced has a state")
	}
	f.Sync([]string{uri})
	state := func(what string, ok func(jwks.State) bool) jwks.State {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			s, wanted := f.State(uri)
			if wanted && ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: state %+v", what, s)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	start := time.Now()
	s := state("down", jwks.State.Failing)
	if s.Set != "" || !s.Fetched.IsZero() || s.FailingSince.Before(start) || !strings.Contains(s.Err, "503") {
		t.Errorf("down from the start: %+v", s)
	}
	since := s.FailingSince
	// Failing again keeps the time it started failing.
	time.Sleep(30 * time.Millisecond)
	if s, _ := f.State(uri); !s.FailingSince.Equal(since) {
		t.Errorf("failing since moved from %v to %v", since, s.FailingSince)
	}
	if n := changes.Load(); n != 0 {
		t.Errorf("failures called OnChange %d times", n)
	}

	down.Store(false)
	s = state("up", func(s jwks.State) bool { return !s.Failing() && s.Set != "" })
	if s.Set != body || s.Keys != 2 || s.Fetched.Before(since) || !s.FailingSince.IsZero() {
		t.Errorf("up: %+v", s)
	}
	fetched := s.Fetched
	if got := f.Sync([]string{uri}); got[uri] != body {
		t.Errorf("Sync after the first fetch: %q", got[uri])
	}

	down.Store(true)
	s = state("down again", jwks.State.Failing)
	if s.Set != body || s.Keys != 2 || s.Fetched.Before(fetched) || s.FailingSince.Before(s.Fetched) {
		t.Errorf("down again: the last good set must be kept: %+v", s)
	}
	if got := f.Sync([]string{uri}); got[uri] != body {
		t.Errorf("Sync while failing: %q", got[uri])
	}
	if s.NextAttempt.IsZero() {
		// Read while an attempt ran: the next one is set once it ends.
		s = state("next attempt", func(s jwks.State) bool { return !s.NextAttempt.IsZero() })
	}
	if s.NextAttempt.Before(s.FailingSince) {
		t.Errorf("next attempt %v before failing since %v", s.NextAttempt, s.FailingSince)
	}
	if n := changes.Load(); n != 1 {
		t.Errorf("OnChange called %d times, want once (the one new set)", n)
	}

	f.Sync(nil)
	if _, ok := f.State(uri); ok {
		t.Error("a URI no longer wanted keeps a state")
	}
}

// TestNoUsableKeysServed: a well-formed set without a usable signing key
// is served as fetched (its issuer's tokens are refused: an identity
// provider that empties its set revokes every key), with Keys 0.
func TestNoUsableKeysServed(t *testing.T) {
	for _, doc := range []string{`{"keys":[]}`, `{"keys":[{"kty":"oct","k":"AA"},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}`} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(doc)) }))
		ctx, cancel := context.WithCancel(context.Background())
		f := jwks.New(ctx, jwks.Options{})
		f.Sync([]string{srv.URL})
		deadline := time.Now().Add(5 * time.Second)
		for {
			s, _ := f.State(srv.URL)
			if s.Failing() {
				t.Fatalf("%s: state %+v, want served", doc, s)
			}
			if s.Set != "" {
				if s.Set != doc || s.Keys != 0 {
					t.Errorf("state %+v, want the set as fetched with 0 keys", s)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never fetched", doc)
			}
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
		srv.Close()
	}
}

// TestFetchFailures: what makes a fetch fail, and the reason given.
func TestFetchFailures(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		err     string
	}{
		{"not 200", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, "status 404 Not Found"},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }, "not a JSON Web Key Set"},
		{"no keys array", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"nokeys":1}`)) }, "not a JSON Web Key Set"},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"keys":[`))
			w.Write([]byte(strings.Repeat(" ", jwks.MaxBytes)))
			w.Write([]byte(`]}`))
		}, "larger than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := jwks.New(ctx, jwks.Options{})
			f.Sync([]string{srv.URL})
			deadline := time.Now().Add(5 * time.Second)
			for {
				s, _ := f.State(srv.URL)
				if s.Failing() {
					if !strings.Contains(s.Err, tt.err) || s.Set != "" {
						t.Errorf("state %+v, want error %q and no set", s, tt.err)
					}
					return
				}
				if s.Set != "" || time.Now().After(deadline) {
					t.Fatalf("state %+v, want error %q", s, tt.err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	// Unreachable: nothing listens.
	srv := httptest.NewServer(http.NotFoundHandler())
	uri := srv.URL
	srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := jwks.New(ctx, jwks.Options{})
	f.Sync([]string{uri})
	deadline := time.Now().Add(5 * time.Second)
	for s, _ := f.State(uri); !s.Failing(); s, _ = f.State(uri) {
		if time.Now().After(deadline) {
			t.Fatal("an unreachable server is not reported")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if s, _ := f.State(uri); !strings.Contains(s.Err, "connect") {
		t.Errorf("unreachable: %q", s.Err)
	}
}

func TestCountKeys(t *testing.T) {
	tests := []struct {
		doc  string
		n    int
		fail bool
	}{
		{`{"keys":[]}`, 0, false},
		{`{"keys":[{"kty":"EC"},{"kty":"RSA","use":"sig"},{"kty":"OKP"}]}`, 3, false},
		{`{"keys":[{"kty":"oct"},{"kty":"RSA","use":"enc"},{"kty":"EC","use":1},{"kty":2}]}`, 0, false},
		{`{"keys":null}`, 0, true},
		{`{"keys":{}}`, 0, true},
		{`[]`, 0, true},
		{``, 0, true},
	}
	for _, tt := range tests {
		n, err := jwks.CountKeys(tt.doc)
		if n != tt.n || (err != nil) != tt.fail {
			t.Errorf("CountKeys(%s) = %d, %v; want %d, fail %v", tt.doc, n, err, tt.n, tt.fail)
		}
	}
}

// FuzzCountKeys: a key set comes from a server the mesh does not control.
func FuzzCountKeys(f *testing.F) {
	for _, seed := range []string{`{"keys":[]}`, `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`,
		`{"keys":[{"kty":"RSA","use":"enc"},null,1,"x"]}`, `{"keys":null}`, `nope`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		n, err := jwks.CountKeys(doc)
		if n < 0 || (err != nil && n != 0) {
			t.Fatalf("CountKeys(%q) = %d, %v", doc, n, err)
		}
	})
}
