package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Renewal schedule.
const (
	// renewFraction of the lifetime passes before a renewal, give or take
	// renewJitter of the lifetime, so that proxies started together do not
	// renew together.
	renewFraction = 0.5
	renewJitter   = 0.1
	// Within warnFraction of the lifetime from expiry a failed renewal is
	// logged as a warning.
	warnFraction = 0.2
	// fetchTimeout bounds one call of Fetch.
	fetchTimeout = 30 * time.Second
	// Failed attempts are retried after minBackoff, doubling up to
	// maxBackoff.
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// RotatorOptions configures a Rotator; NewRotator copies them.
type RotatorOptions struct {
	// Source receives the SVIDs. Required.
	Source *Source
	// ID is the SPIFFE ID requested, in Source's trust domain. Required.
	ID spiffeid.ID
	// Fetch sends a DER certificate signing request to the CA and returns
	// the signed chain, leaf first. Required. It must honour ctx (each call
	// is also bounded to 30 s); calls never overlap.
	Fetch func(ctx context.Context, csrDER []byte) (chain []*x509.Certificate, err error)
	// Logger receives renewal events. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock the renewal schedule is computed with. Nil means
	// time.Now.
	Now func() time.Time
}

// Rotator obtains the proxy's SVID and keeps it fresh: each renewal uses a
// new key and CSR, and its result is published with Source.SetSVID.
//
// A Rotator is safe for concurrent use; its renewals are serialised.
// Initial and Run block until they are done (see each); the usual sequence
// is Initial, then Run in its own goroutine.
type Rotator struct {
	src   *Source
	id    spiffeid.ID
	fetch func(context.Context, []byte) ([]*x509.Certificate, error)
	log   *slog.Logger
	now   func() time.Time
	// sleep waits for d or until ctx ends, and reports whether d passed:
	// every wait of Initial and Run goes through it, so that tests can
	// replace it (with now) by a clock they advance themselves.
	sleep func(ctx context.Context, d time.Duration) bool
	minBO time.Duration // the backoff; variables for tests
	maxBO time.Duration

	renewing sync.Mutex // held for a whole renewal
}

// NewRotator checks opts and returns a Rotator; nothing starts until
// Initial or Run.
func NewRotator(opts RotatorOptions) (*Rotator, error) {
	switch {
	case opts.Source == nil:
		return nil, errors.New("identity: new rotator: no source")
	case opts.Fetch == nil:
		return nil, errors.New("identity: new rotator: no fetch function")
	case opts.ID.IsZero():
		return nil, errors.New("identity: new rotator: empty spiffe id")
	case opts.ID.TrustDomain() != opts.Source.TrustDomain():
		return nil, fmt.Errorf("identity: new rotator: id %s is not in trust domain %q", opts.ID, opts.Source.TrustDomain().Name())
	}
	r := &Rotator{
		src:   opts.Source,
		id:    opts.ID,
		fetch: opts.Fetch,
		log:   opts.Logger,
		now:   opts.Now,
		sleep: timerSleep,
		minBO: minBackoff,
		maxBO: maxBackoff,
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.log = r.log.With("spiffe_id", r.id.String())
	return r, nil
}

// Initial obtains a first SVID, retrying with backoff until it succeeds
// (nil) or ctx ends (an error wrapping ctx.Err() and the last failure).
// Each failed attempt is logged at INFO.
func (r *Rotator) Initial(ctx context.Context) error {
	b := r.newBackoff()
	for {
		err := r.renew(ctx)
		if err == nil {
			return nil
		}
		delay := b.next()
		r.log.Info("certificate request failed, will retry", "error", err, "retry_in", delay)
		if !r.sleep(ctx, delay) {
			return fmt.Errorf("identity: no initial svid: %w (last attempt: %w)", ctx.Err(), err)
		}
	}
}

// Run keeps the SVID fresh until ctx ends: it renews at half of the current
// certificate's lifetime (±10 % of the lifetime), retries failures with
// exponential backoff (1 s doubling to 30 s), and, if the Source has no SVID,
// obtains one at once. Failures are logged, not returned: at INFO, at WARN
// ("certificate expires soon and could not be renewed") within the last
// 20 % of the lifetime, at ERROR once the certificate has expired.
func (r *Rotator) Run(ctx context.Context) {
	b := r.newBackoff()
	var (
		planned *svid // the SVID renewAt was computed for
		renewAt time.Time
		renewed bool // the last attempt succeeded
	)
	for ctx.Err() == nil {
		cur := r.src.svid.Load()
		if cur != nil {
			// Planned once per SVID, so that its jitter is drawn once.
			if cur != planned {
				planned, renewAt = cur, r.renewalTime(cur.cert.Leaf)
			}
			if wait := renewAt.Sub(r.now()); wait > 0 {
				b.reset()
				renewed = false
				if !r.sleep(ctx, wait) {
					return
				}
				continue // the SVID may have been replaced meanwhile
			}
			if renewed {
				// The SVID just obtained is already due: its lifetime is too
				// short for this schedule, or clocks disagree. Renewing at
				// once would spin against the CA.
				delay := b.next()
				r.log.Warn("new certificate is already due for renewal",
					"not_after", cur.cert.Leaf.NotAfter, "retry_in", delay)
				if !r.sleep(ctx, delay) {
					return
				}
			}
		}
		err := r.renew(ctx)
		if ctx.Err() != nil {
			return
		}
		renewed = err == nil
		if err != nil {
			delay := b.next()
			r.logFailure(cur, err, delay)
			if !r.sleep(ctx, delay) {
				return
			}
		}
	}
}

// renewalTime is when a certificate should be renewed.
func (r *Rotator) renewalTime(leaf *x509.Certificate) time.Time {
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	offset := renewFraction + renewJitter*(2*rand.Float64()-1)
	return leaf.NotBefore.Add(time.Duration(offset * float64(lifetime)))
}

// logFailure logs a failed renewal of cur (nil: none yet) at the level its
// urgency deserves.
func (r *Rotator) logFailure(cur *svid, err error, retryIn time.Duration) {
	attrs := []any{"error", err, "retry_in", retryIn}
	if cur == nil {
		r.log.Warn("no certificate yet and could not obtain one", attrs...)
		return
	}
	leaf := cur.cert.Leaf
	attrs = append(attrs, "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	left := leaf.NotAfter.Sub(r.now())
	switch {
	case left <= 0:
		r.log.Error("certificate expired and could not be renewed", attrs...)
	case float64(left) <= warnFraction*float64(leaf.NotAfter.Sub(leaf.NotBefore)):
		r.log.Warn("certificate expires soon and could not be renewed", attrs...)
	default:
		r.log.Info("certificate renewal failed, will retry", attrs...)
	}
}

// renew obtains and publishes a new SVID under a new key.
func (r *Rotator) renew(ctx context.Context) error {
	r.renewing.Lock()
	defer r.renewing.Unlock()
	key, err := NewKey()
	if err != nil {
		return err
	}
	csr, err := NewCSR(key, r.id)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	chain, err := r.fetch(fctx, csr)
	cancel()
	if err != nil {
		return fmt.Errorf("identity: fetch svid: %w", err)
	}
	if len(chain) == 0 || chain[0] == nil {
		return errors.New("identity: fetch svid: empty certificate chain")
	}
	if id, err := leafID(chain[0]); err == nil && id != r.id {
		return fmt.Errorf("identity: fetch svid: issued for %s, requested %s", id, r.id)
	}
	if err := r.src.SetSVID(chain, key); err != nil {
		return err
	}
	leaf := chain[0]
	r.log.Info("certificate obtained", "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	return nil
}

func (r *Rotator) newBackoff() backoff { return backoff{first: r.minBO, limit: r.maxBO} }

// backoff is an exponential delay sequence: first, doubling up to limit. It
// is not safe for concurrent use.
type backoff struct {
	first, limit, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.first
	} else {
		b.cur = min(2*b.cur, b.limit)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// timerSleep waits for d or until ctx ends, and reports whether d passed.
func timerSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
