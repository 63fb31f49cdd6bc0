// Package jwks fetches the JSON Web Key Sets named by RequestAuthentication
// jwksUri fields, so the control plane can inline them into the proxies'
// jwt_authn config (the proxies never fetch keys themselves).
//
// A Fetcher keeps one goroutine per URI that is wanted: it fetches the set
// (HTTP or HTTPS, 5 s timeout), refreshes it every 5 minutes, retries a
// failed fetch with exponential backoff (1 s doubling, at most the refresh
// interval) and keeps the last good set meanwhile. A fetch fails when the
// server cannot be reached, answers other than 200 or sends something
// that is not a key set; a key set without any usable signing key (an
// RSA, EC or OKP key whose "use", if any, is "sig") is served as fetched,
// so its issuer's tokens are refused. Each time a set changes,
// OnChange is called (the control plane pushes new config). A URI never
// fetched successfully is absent from Sync's result; the generator then
// inlines {"keys":[]} so its tokens fail (fail closed).
//
// State tells what is known of one URI: the set served and when it was
// fetched, and whether (since when, why) fetching it is failing. The
// control plane shows it in the RequestAuthentications' status; it
// changes without OnChange being called (a failed attempt changes no
// proxy's configuration).
package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Defaults of a Fetcher.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultRefresh    = 5 * time.Minute
	DefaultMinBackoff = time.Second
	// MaxBytes bounds a key set document.
	MaxBytes = 1 << 20
)

// Options configure a Fetcher; zero values take the defaults.
type Options struct {
	Client     *http.Client
	Timeout    time.Duration
	Refresh    time.Duration
	MinBackoff time.Duration
	// OnChange is called (from a fetch goroutine) whenever a key set
	// changes.
	OnChange func()
	Logger   *slog.Logger
}

// Fetcher fetches and caches key sets. It is safe for concurrent use.
type Fetcher struct {
	ctx  context.Context
	opts Options

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	cancel context.CancelFunc
	// state is guarded by the Fetcher's mu.
	state State
}

// State is what a Fetcher knows of one URI.
type State struct {
	// Set is the key set served: the last one fetched, "" until a fetch
	// succeeds. Keys is its number of usable signing keys.
	Set  string
	Keys int
	// Fetched is when the last fetch succeeded (zero: never).
	Fetched time.Time
	// Err is why the last attempt failed ("" when it succeeded or none
	// has ended yet); FailingSince is the first failed attempt since the
	// last success (zero when the last attempt succeeded).
	Err          string
	FailingSince time.Time
	// NextAttempt is when the next fetch starts (zero while one runs).
	NextAttempt time.Time
}

// Failing reports whether the last attempt failed.
func (s State) Failing() bool { return s.Err != "" }

// New returns a Fetcher whose goroutines stop with ctx.
func New(ctx context.Context, opts Options) *Fetcher {
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.OnChange == nil {
		opts.OnChange = func() {}
	}
	return &Fetcher{ctx: ctx, opts: opts, entries: map[string]*entry{}}
}

// Sync makes the wanted URIs exactly those fetched (starting new ones,
// stopping those no longer wanted) and returns the key sets fetched so
// far, by URI.
func (f *Fetcher) Sync(uris []string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for uri, e := range f.entries {
		if !slices.Contains(uris, uri) {
			e.cancel()
			delete(f.entries, uri)
		}
	}
	out := make(map[string]string, len(uris))
	for _, uri := range uris {
		e, ok := f.entries[uri]
		if !ok {
			ctx, cancel := context.WithCancel(f.ctx)
			e = &entry{cancel: cancel}
			f.entries[uri] = e
			go f.run(ctx, uri, e)
		}
		if e.state.Set != "" {
			out[uri] = e.state.Set
		}
	}
	return out
}

// State returns what is known of a URI, or false when it is not wanted
// (Sync has not been given it).
func (f *Fetcher) State(uri string) (State, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[uri]
	if !ok {
		return State{}, false
	}
	return e.state, true
}

func (f *Fetcher) run(ctx context.Context, uri string, e *entry) {
	backoff := f.opts.MinBackoff
	for {
		keys, n, err := f.fetch(ctx, uri)
		if err != nil && ctx.Err() != nil {
			return
		}
		now := time.Now()
		wait := f.opts.Refresh
		if err != nil {
			wait = backoff
			backoff = min(backoff*2, f.opts.Refresh)
		} else {
			backoff = f.opts.MinBackoff
		}
		f.mu.Lock()
		if f.entries[uri] != e { // no longer wanted
			f.mu.Unlock()
			return
		}
		prev := e.state
		st := &e.state
		st.NextAttempt = now.Add(wait)
		if err != nil {
			st.Err = err.Error()
			if prev.Err == "" {
				st.FailingSince = now
			}
		} else {
			st.Set, st.Keys, st.Fetched, st.Err, st.FailingSince = keys, n, now, "", time.Time{}
		}
		f.mu.Unlock()
		changed := err == nil && keys != prev.Set
		switch {
		case err != nil && prev.Err != err.Error():
			// Logged when it starts failing or fails differently, not
			// at every attempt.
			args := []any{"uri", uri, "error", err, "in", wait}
			if !prev.Fetched.IsZero() {
				args = append(args, "serving_keys_fetched_at", prev.Fetched)
			}
			f.opts.Logger.Warn("fetching JWKS failed; retrying", args...)
		case err != nil:
			f.opts.Logger.Debug("fetching JWKS failed again", "uri", uri, "error", err, "in", wait)
		case prev.Err != "":
			f.opts.Logger.Info("JWKS fetched again", "uri", uri, "keys", n, "failing_since", prev.FailingSince)
		case changed:
			f.opts.Logger.Info("JWKS fetched", "uri", uri, "keys", n)
		}
		if changed {
			f.opts.OnChange()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		f.mu.Lock()
		e.state.NextAttempt = time.Time{}
		f.mu.Unlock()
	}
}

// fetch gets a key set and checks it is one: a JSON object with a "keys"
// array. It returns the document as fetched and its number of usable keys.
func (f *Fetcher) fetch(ctx context.Context, uri string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := f.opts.Client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBytes+1))
	if err != nil {
		return "", 0, err
	}
	if len(body) > MaxBytes {
		return "", 0, errors.New("key set larger than 1 MiB")
	}
	n, err := CountKeys(string(body))
	if err != nil {
		return "", 0, err
	}
	// A well-formed set without a usable key is served as it is: the
	// issuer's tokens are refused (fail closed: an identity provider that
	// empties its set revokes every key), and the status says why.
	return string(body), n, nil
}

// CountKeys checks that doc is a JSON Web Key Set ({"keys": [...]}) and
// counts its usable signing keys: RSA, EC or OKP keys whose "use", if
// given, is "sig". Whether a key suits a rule's algorithms is decided
// later, per rule.
func CountKeys(doc string) (int, error) {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &set); err != nil || set.Keys == nil {
		return 0, errors.New(`not a JSON Web Key Set ({"keys": [...]})`)
	}
	n := 0
	for _, k := range set.Keys {
		kty, _ := k["kty"].(string)
		use, hasUse := k["use"]
		if (kty == "RSA" || kty == "EC" || kty == "OKP") && (!hasUse || use == "sig") {
			n++
		}
	}
	return n, nil
}
