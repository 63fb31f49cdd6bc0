// Package telemetry pushes the proxy's traffic counters and a sample of
// recent requests to the control plane, for the zero-infrastructure view
// (`weft stat`, `weft top`, `weft tap`) that needs no Prometheus.
//
// Every Interval (2 s, ±20 % jitter) the Pusher POSTs a Push to
// https://ISSUER_ADDR/v1/telemetry over mutual TLS with the proxy's SPIFFE
// certificate. Counters are cumulative since the proxy started (with a
// random boot id), so a lost push loses nothing: the control plane works
// from the deltas and detects restarts. Request samples for tap are taken
// only while the control plane says someone is tapping (the answer to
// each push), at most MaxSamples per push, by reservoir sampling: the data
// path pays one atomic load when nobody taps.
package telemetry

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	wire "github.com/weftmesh/weft/api/telemetry"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/stats"
)

// Path is where the control plane receives pushes (on its issuer port).
const Path = wire.Path

// MaxSamples is the most request samples one push carries.
const MaxSamples = 50

// Push, Sample and Reply are the wire types (api/telemetry), shared with
// the control plane.
type (
	Push   = wire.Push
	Sample = wire.Sample
	Reply  = wire.Reply
)

// Options configure a Pusher.
type Options struct {
	// URL is https://ISSUER_ADDR/v1/telemetry.
	URL string
	// TLS is the client config presenting the proxy's certificate and
	// verifying the control plane's SPIFFE ID (the same as renewals use).
	TLS       *tls.Config
	Stats     *stats.Stats
	Workload  string
	Namespace string
	Labels    map[string]string
	Admin     string
	// AdminAddr, when set, replaces Admin at every push (the admin
	// listener's bound address is known only once it is bound).
	AdminAddr func() string
	// Interval between pushes (default 2s), jittered ±20 %.
	Interval time.Duration
	Logger   *slog.Logger
	// Client replaces the HTTP client built from TLS (tests).
	Client *http.Client
}

// Pusher sends pushes. Sample is safe for concurrent use and never
// blocks; Run runs the pushes.
type Pusher struct {
	opts   Options
	boot   string
	client *http.Client

	tapping atomic.Bool
	seen    atomic.Uint64 // requests offered since the last push
	mu      sync.Mutex
	samples []Sample // reservoir, at most MaxSamples

	pushes, failures atomic.Uint64
}

// New returns a Pusher.
func New(o Options) *Pusher {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stats == nil {
		o.Stats = stats.New()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	p := &Pusher{opts: o, boot: hex.EncodeToString(b[:]), client: o.Client}
	if p.client == nil {
		p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig:     o.TLS,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     30 * time.Second,
		}}
	}
	return p
}

// Tapping reports whether samples are wanted; the data path checks it
// before building a Sample.
func (p *Pusher) Tapping() bool { return p != nil && p.tapping.Load() }

// Sample offers one finished request for tap. Cheap when not tapping;
// otherwise a reservoir keeps a uniform sample of at most MaxSamples
// requests per push interval. Nil-safe.
func (p *Pusher) Sample(s Sample) {
	if !p.Tapping() {
		return
	}
	n := p.seen.Add(1)
	var slot int
	if n > MaxSamples {
		r := mrand.Uint64N(n)
		if r >= MaxSamples {
			return
		}
		slot = int(r)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples) < MaxSamples {
		p.samples = append(p.samples, s)
	} else {
		p.samples[slot] = s
	}
}

// takeSamples returns and resets the reservoir.
func (p *Pusher) takeSamples() []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.samples
	p.samples = nil
	p.seen.Store(0)
	return out
}

// Run pushes every Interval until ctx is done. It blocks.
func (p *Pusher) Run(ctx context.Context) {
	t := time.NewTimer(jitter(p.opts.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.PushOnce(ctx); err != nil {
			p.failures.Add(1)
			p.opts.Logger.Debug("telemetry push failed", "error", err)
		}
		t.Reset(jitter(p.opts.Interval))
	}
}

// Counts returns pushes made and failed.
func (p *Pusher) Counts() (pushes, failures uint64) { return p.pushes.Load(), p.failures.Load() }

// PushOnce sends one push now.
func (p *Pusher) PushOnce(ctx context.Context) error {
	body, err := json.Marshal(p.build(time.Now()))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.opts.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("telemetry: push: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("telemetry: push refused: %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	p.pushes.Add(1)
	var r Reply
	if json.Unmarshal(data, &r) == nil {
		p.tapping.Store(r.Tap)
	}
	return nil
}

func (p *Pusher) build(now time.Time) Push {
	admin := p.opts.Admin
	if p.opts.AdminAddr != nil {
		admin = p.opts.AdminAddr()
	}
	return Push{Workload: p.opts.Workload, Namespace: p.opts.Namespace, Labels: p.opts.Labels, Admin: admin,
		Boot: p.boot, Time: now.UTC(), BoundsMS: stats.Bounds, Edges: p.opts.Stats.Edges(), Samples: p.takeSamples()}
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
}
