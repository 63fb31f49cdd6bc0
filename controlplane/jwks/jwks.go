// Package jwks fetches the JSON Web Key Sets named by RequestAuthentication
// jwksUri fields, so the control plane can inline them into the proxies'
// jwt_authn config (the proxies never fetch keys themselves).
//
// A Fetcher keeps one goroutine per URI that is wanted: it fetches the set
// (HTTP or HTTPS, 5 s timeout), refreshes it every 5 minutes, retries a
// failed fetch with exponential backoff (1 s doubling, at most the refresh
// interval) and keeps the last good set meanwhile. Each time a set
// changes, OnChange is called (the control plane pushes new config). A URI
// never fetched successfully is absent from Sync's result; the generator
// then inlines {"keys":[]} so its tokens fail (fail closed).
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
	keys   string // "" until fetched
	cancel context.CancelFunc
}

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
		if e.keys != "" {
			out[uri] = e.keys
		}
	}
	return out
}

func (f *Fetcher) run(ctx context.Context, uri string, e *entry) {
	backoff := f.opts.MinBackoff
	for {
		keys, err := f.fetch(ctx, uri)
		wait := f.opts.Refresh
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.opts.Logger.Warn("fetching JWKS failed; retrying", "uri", uri, "error", err, "in", backoff)
			wait = backoff
			backoff = min(backoff*2, f.opts.Refresh)
		} else {
			backoff = f.opts.MinBackoff
			f.mu.Lock()
			changed := f.entries[uri] == e && e.keys != keys
			if changed {
				e.keys = keys
			}
			f.mu.Unlock()
			if changed {
				f.opts.Logger.Info("JWKS fetched", "uri", uri)
				f.opts.OnChange()
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// fetch gets a key set and checks it is one: a JSON object with a "keys"
// array. It returns the document as fetched.
func (f *Fetcher) fetch(ctx context.Context, uri string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := f.opts.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBytes+1))
	if err != nil {
		return "", err
	}
	if len(body) > MaxBytes {
		return "", errors.New("key set larger than 1 MiB")
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || set.Keys == nil {
		return "", errors.New(`not a JSON Web Key Set ({"keys": [...]})`)
	}
	return string(body), nil
}
