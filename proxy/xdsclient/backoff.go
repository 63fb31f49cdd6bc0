package xdsclient

import (
	"math/rand/v2"
	"time"
)

// backoff is an exponential backoff: initial, doubling up to max, each
// delay jittered by ±20%. It is not safe for concurrent use.
type backoff struct {
	initial, max time.Duration
	cur          time.Duration
}

// next returns the delay before the next attempt.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.initial
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return jitter(b.cur)
}

// reset makes the next delay the initial one again.
func (b *backoff) reset() { b.cur = 0 }

// jitter spreads d uniformly over [0.8d, 1.2d), so that proxies that lost
// the control plane together do not come back in lockstep.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
