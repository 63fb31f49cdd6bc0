package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// recorder is a slog.Handler that keeps the records, safe for concurrent
// use.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recorder) WithGroup(string) slog.Handler            { return h }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// first returns the first record of level with message msg.
func (h *recorder) first(level slog.Level, msg string) (slog.Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.Level == level && r.Message == msg {
			return r, true
		}
	}
	return slog.Record{}, false
}

// rotatorEnv is a Source without SVID, a CA, and a Rotator for catalogID
// whose Fetch is fetch (by default: the CA signs for ttl).
type rotatorEnv struct {
	ca     *testCA
	src    *Source
	rot    *Rotator
	log    *recorder
	calls  atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

func newRotatorEnv(t *testing.T, ttl time.Duration, fetch func(n int64, csr []byte) ([]*x509.Certificate, error)) *rotatorEnv {
	t.Helper()
	e := &rotatorEnv{ca: newTestCA(t, "weft"), log: &recorder{}}
	var err error
	if e.src, err = NewSource(testTD); err != nil {
		t.Fatal(err)
	}
	if err := e.src.SetBundle([]*x509.Certificate{e.ca.root}); err != nil {
		t.Fatal(err)
	}
	if fetch == nil {
		fetch = func(_ int64, csr []byte) ([]*x509.Certificate, error) { return e.ca.sign(csr, ttl) }
	}
	e.rot, err = NewRotator(RotatorOptions{
		Source: e.src,
		ID:     catalogID,
		Fetch: func(ctx context.Context, csr []byte) ([]*x509.Certificate, error) {
			return fetch(e.calls.Add(1), csr)
		},
		Logger: slog.New(e.log),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.rot.minBO, e.rot.maxBO = 50*time.Millisecond, 200*time.Millisecond
	return e
}

// run starts Run until the test ends.
func (e *rotatorEnv) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.rot.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func (e *rotatorEnv) initial(t *testing.T) *x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.rot.Initial(ctx); err != nil {
		t.Fatal(err)
	}
	return e.src.svid.Load().cert.Leaf
}

// waitForNewSVID waits until the SVID is no longer old, and returns the new
// leaf and when it was seen.
func (e *rotatorEnv) waitForNewSVID(t *testing.T, old *x509.Certificate, limit time.Time) (*x509.Certificate, time.Time) {
	t.Helper()
	for time.Now().Before(limit) {
		if cur := e.src.svid.Load(); cur != nil && cur.cert.Leaf != old {
			return cur.cert.Leaf, time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no new svid by %v (%d fetches)", limit.Format(time.TimeOnly), e.calls.Load())
	return nil, time.Time{}
}

func TestRotatorRenewsAtHalfLife(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	var keys sync.Map // public keys seen in CSRs
	var e *rotatorEnv
	e = newRotatorEnv(t, ttl, func(n int64, csr []byte) ([]*x509.Certificate, error) {
		if req, err := x509.ParseCertificateRequest(csr); err == nil {
			if _, dup := keys.LoadOrStore(fmt.Sprint(req.PublicKey), n); dup {
				return nil, errors.New("csr reuses a key")
			}
		}
		return e.ca.sign(csr, ttl)
	})
	first := e.initial(t)
	e.run(t)

	second, seen := e.waitForNewSVID(t, first, first.NotAfter)
	// Due at 50 % ± 10 % of the lifetime after NotBefore; allow for polling
	// and a slow (race-instrumented) machine on the late side.
	age := seen.Sub(first.NotBefore)
	if lo, hi := 4*ttl/10-50*time.Millisecond, 6*ttl/10+300*time.Millisecond; age < lo || age > hi {
		t.Errorf("renewed %v after NotBefore, want within [%v, %v]", age, lo, hi)
	}
	if id, _ := leafID(second); id != catalogID {
		t.Errorf("renewed svid id = %v, want %v", id, catalogID)
	}
	if n := e.calls.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	if _, ok := e.log.first(slog.LevelInfo, "certificate obtained"); !ok {
		t.Error(`no "certificate obtained" event`)
	}
}

func TestRotatorRecoversAfterFailures(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	var e *rotatorEnv
	e = newRotatorEnv(t, ttl, func(n int64, csr []byte) ([]*x509.Certificate, error) {
		if n >= 2 && n <= 4 { // the initial fetch works, the next three fail
			return nil, errors.New("ca unavailable")
		}
		return e.ca.sign(csr, ttl)
	})
	first := e.initial(t)
	e.run(t)

	e.waitForNewSVID(t, first, first.NotAfter)
	if n := e.calls.Load(); n != 5 {
		t.Errorf("%d fetches, want 5 (1 initial, 3 failures, 1 success)", n)
	}
	if _, ok := e.log.first(slog.LevelInfo, "certificate renewal failed, will retry"); !ok {
		t.Error("failed renewals were not logged")
	}
	if !e.src.Ready() {
		t.Error("source is not ready after recovery")
	}
}

func TestRotatorWarnsBeforeExpiry(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	var e *rotatorEnv
	e = newRotatorEnv(t, ttl, func(n int64, csr []byte) ([]*x509.Certificate, error) {
		if n > 1 {
			return nil, errors.New("ca unavailable")
		}
		return e.ca.sign(csr, ttl)
	})
	e.rot.maxBO = 100 * time.Millisecond // several tries in the last 20 %
	first := e.initial(t)
	e.run(t)

	limit := first.NotAfter.Add(time.Second)
	for time.Now().Before(limit) {
		if _, ok := e.log.first(slog.LevelError, "certificate expired and could not be renewed"); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	warn, ok := e.log.first(slog.LevelWarn, "certificate expires soon and could not be renewed")
	if !ok {
		t.Fatal("no warning before expiry")
	}
	if from := first.NotAfter.Add(-ttl / 5); warn.Time.Before(from) || !warn.Time.Before(first.NotAfter) {
		t.Errorf("warned at %v, want within [%v, %v)", warn.Time, from, first.NotAfter)
	}
	if _, ok := e.log.first(slog.LevelError, "certificate expired and could not be renewed"); !ok {
		t.Error("no error once expired")
	}
	if e.src.Ready() {
		t.Error("source with an expired svid is ready")
	}
}

// TestRotatorDoesNotSpin checks that a CA issuing certificates already past
// their renewal time is not called in a tight loop.
func TestRotatorDoesNotSpin(t *testing.T) {
	t.Parallel()
	var e *rotatorEnv
	e = newRotatorEnv(t, 0, func(_ int64, csr []byte) ([]*x509.Certificate, error) {
		// Valid from 100 s ago for 60 s more: due since 20 s (± 16 s).
		now := time.Now()
		return e.ca.signFor(csr, now.Add(-100*time.Second), now.Add(60*time.Second))
	})
	e.rot.minBO, e.rot.maxBO = 100*time.Millisecond, time.Second
	e.run(t)
	time.Sleep(700 * time.Millisecond) // pauses of 100, 200, 400 ms
	if n := e.calls.Load(); n < 2 || n > 5 {
		t.Errorf("%d fetches in 700 ms, want 2 to 5", n)
	}
	if _, ok := e.log.first(slog.LevelWarn, "new certificate is already due for renewal"); !ok {
		t.Error("no warning about certificates already due")
	}
}

func TestRotatorRunWithoutSVID(t *testing.T) {
	t.Parallel()
	e := newRotatorEnv(t, time.Minute, nil)
	e.run(t)
	e.waitForNewSVID(t, nil, time.Now().Add(5*time.Second))
	if !e.src.Ready() {
		t.Error("not ready")
	}
}

func TestRotatorInitial(t *testing.T) {
	t.Parallel()
	otherID := spiffeid.RequireFromString("spiffe://weft.test/ns/shop/sa/other")
	for _, tt := range []struct {
		name    string
		fetch   func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error)
		wantErr string // "" = success
	}{
		{"retries until the ca answers", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			if n <= 2 {
				return nil, errors.New("ca unavailable")
			}
			return e.ca.sign(csr, time.Minute)
		}, ""},
		{"gives up when the context ends", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			return nil, errors.New("ca unavailable")
		}, "ca unavailable"},
		{"refuses an svid for another id", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			chain, _ := e.ca.issue(t, otherID, nil)
			return chain, nil
		}, "issued for spiffe://weft.test/ns/shop/sa/other"},
		{"refuses an svid for another key", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			chain, _ := e.ca.issue(t, catalogID, nil)
			return chain, nil
		}, "does not match"},
		{"refuses an empty chain", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			return nil, nil
		}, "empty certificate chain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var e *rotatorEnv
			e = newRotatorEnv(t, 0, func(n int64, csr []byte) ([]*x509.Certificate, error) { return tt.fetch(t, e, n, csr) })
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := e.rot.Initial(ctx)
			if tt.wantErr == "" {
				if err != nil || !e.src.Ready() {
					t.Fatalf("Initial: %v (ready %v)", err, e.src.Ready())
				}
				return
			}
			if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Initial: err = %v, want the deadline and %q", err, tt.wantErr)
			}
			if e.src.Ready() {
				t.Error("ready without an svid")
			}
		})
	}
}

func TestNewRotatorErrors(t *testing.T) {
	src, err := NewSource(testTD)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(context.Context, []byte) ([]*x509.Certificate, error) { return nil, nil }
	for _, tt := range []struct {
		name string
		opts RotatorOptions
	}{
		{"no source", RotatorOptions{ID: catalogID, Fetch: fetch}},
		{"no fetch", RotatorOptions{Source: src, ID: catalogID}},
		{"no id", RotatorOptions{Source: src, Fetch: fetch}},
		{"id of another trust domain", RotatorOptions{Source: src, ID: foreignID, Fetch: fetch}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewRotator(tt.opts); err == nil || !strings.HasPrefix(err.Error(), "identity: ") {
				t.Fatalf("NewRotator: err = %v, want an identity error", err)
			}
		})
	}
}
