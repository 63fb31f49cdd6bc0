package forward

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/tracing"
)

// exchange is one request's trip upstream: the http.RoundTripper of its
// ReverseProxy (a copy of the Forwarder's template, in the same
// allocation). RoundTrip makes the attempts: pick an endpoint (avoiding
// those already tried), take a connection slot, send, and retry per the
// route's policy while no response has been handed back. The attempt
// whose response is returned stays open until finish, after ReverseProxy
// has copied the response (or the upgraded tunnel closed).
//
// Retries: the conditions are Envoy's retry_on. A failure without an
// answer (reset, EOF before the headers) is retried under 5xx,
// gateway-error and reset; a connect failure (dial or TLS) also under
// connect-failure; REFUSED_STREAM also under refused-stream. A per-try
// timeout is retried like a reset (5xx, gateway-error, reset). Answers
// are retried by status (5xx, gateway-error, retriable-4xx: 409,
// retriable-status-codes) or by the grpc-status of a trailers-only answer.
// Only methods the policy allows are retried, and only while the request
// body is replayable (bodies up to the route's buffer limit). Each retry
// needs the cluster's retry budget (or max_retries); when refused, the
// last answer goes to the client as is. Backoff is exponential with full
// jitter and ends early with the request.
type exchange struct {
	rp httputil.ReverseProxy
	sw statusWriter

	f         *Forwarder
	snap      *snapshot.Snapshot
	rt        *route.Route
	cluster   *snapshot.Cluster
	service   string
	transport http.RoundTripper
	scheme    string
	grpc      bool
	upgrade   bool
	switched  bool // the upstream answered 101: a tunnel
	hash      uint64
	hasHash   bool
	setCookie string      // Set-Cookie of a generated hash cookie
	timer     *time.Timer // an upgrade's route timeout, stopped on 101
	url       url.URL     // the outgoing URL (rewritten)

	body *replayBody   // set when the body may be replayed or mirrored
	out  *http.Request // ReverseProxy's outgoing request

	// The attempt whose response is returned, closed by finish.
	ep           *balancer.Endpoint
	done         balancer.Done
	result       balancer.Result
	cancel       context.CancelFunc
	releaseConn  func()
	releaseRetry func()

	avoid [4]*balancer.Endpoint

	// Observation (observe.go): filled in as the request goes, read once
	// by the handler's done.
	start         time.Time
	reqBody       countingBody
	span          *tracing.Span
	upCert        *x509.Certificate // the upstream's verified certificate
	peerPrincipal string            // inbound: the client's SPIFFE ID
	peerWorkload  string            // inbound: the client's workload, as its proxy said over mTLS
	peerVersion   string
	edge          bool // counted in the edge stats
}

var _ http.RoundTripper = (*exchange)(nil)

// finish ends the last attempt: outlier report, slots, per-try context.
func (x *exchange) finish() {
	if x.done != nil {
		x.done(x.result)
		x.done = nil
	}
	if x.cancel != nil {
		x.cancel()
	}
	if x.releaseConn != nil {
		x.releaseConn()
		x.releaseConn = nil
	}
	if x.releaseRetry != nil {
		x.releaseRetry()
		x.releaseRetry = nil
	}
	if x.timer != nil {
		x.timer.Stop()
	}
	if x.body != nil {
		x.body.stop()
	}
}

// RoundTrip makes the attempts; out is ReverseProxy's outgoing request.
func (x *exchange) RoundTrip(out *http.Request) (*http.Response, error) {
	x.out = out
	base := out.Context()
	pick := x.cluster.Picker
	pol := x.rt.Retry
	maxRetries := 0
	var perTry time.Duration
	if pol != nil && !x.upgrade && pol.MethodAllowed(out.Method) {
		maxRetries = pol.NumRetries
		perTry = pol.PerTryTimeout
	}
	hasBody := out.Body != nil && out.Body != http.NoBody
	if hasBody && (maxRetries > 0 || len(x.rt.Mirrors) > 0) {
		if out.ContentLength > int64(x.rt.BufferLimit) {
			maxRetries = 0 // too big to keep: streamed, not retried, not mirrored
		} else {
			x.body = newReplayBody(out.Body, x.rt.BufferLimit, out.ContentLength)
		}
	}
	if !hasBody && len(x.rt.Mirrors) > 0 && !x.upgrade {
		x.f.mirror(x, out, nil)
	}
	avoid := x.avoid[:0]
	var releaseRetry func()
	for try := 0; ; try++ {
		ep := pick.PickFor(balancer.Request{Hash: x.hash, HasHash: x.hasHash, Avoid: avoid})
		if ep == nil {
			release(releaseRetry)
			return nil, &localError{http.StatusServiceUnavailable, "no healthy upstream for " + x.service, -1, flagNoHealthy}
		}
		releaseConn, err := pick.AcquireConnection(base)
		if err != nil {
			release(releaseRetry)
			if errors.Is(err, balancer.ErrOverflow) {
				return nil, errOverflow
			}
			return nil, classifyError(base, err, false)
		}
		req := out
		var cancel context.CancelFunc
		if try > 0 || perTry > 0 {
			ctx := base
			if perTry > 0 {
				ctx, cancel = context.WithTimeout(base, perTry)
			}
			req = out.WithContext(ctx)
			u := *out.URL
			req.URL = &u
		}
		req.URL.Scheme = x.scheme
		req.URL.Host = ep.Address
		if x.body != nil {
			req.Body = x.body.reader()
		}
		done := ep.Begin()
		resp, err := x.transport.RoundTrip(req)

		var result balancer.Result
		var kind errKind
		if err != nil {
			kind = kindOf(req.Context(), err)
			result = resultOfError(kind)
		} else {
			result = resultOfStatus(resp.StatusCode)
		}
		retry := try < maxRetries && base.Err() == nil && (x.body == nil || x.body.replayable())
		if retry {
			if err != nil {
				retry = retryError(pol, kind)
			} else {
				retry = resp.StatusCode != http.StatusSwitchingProtocols && pol.RetryStatus(resp.StatusCode, resp.Header)
			}
		}
		if retry {
			rel, ok := pick.AcquireRetry()
			if ok {
				done(result)
				discard(resp)
				if cancel != nil {
					cancel()
				}
				releaseConn()
				release(releaseRetry)
				releaseRetry = rel
				if pol.PreviousHosts {
					avoid = append(avoid, ep)
				}
				if !sleep(base, backoff(pol, try+1)) {
					release(releaseRetry)
					return nil, classifyError(base, base.Err(), false)
				}
				continue
			}
		}
		if try > 0 && (err != nil || resp.StatusCode >= 500) {
			x.sw.flags |= flagRetryLimit // retried, and the last try failed too
		}
		if err != nil {
			done(result)
			if cancel != nil {
				cancel()
			}
			releaseConn()
			release(releaseRetry)
			x.ep = ep
			return nil, classifyError(base, err, kind == kindTimeout && base.Err() == nil)
		}
		if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
			x.upCert = resp.TLS.PeerCertificates[0]
		}
		x.ep, x.done, x.result, x.cancel, x.releaseConn, x.releaseRetry = ep, done, result, cancel, releaseConn, releaseRetry
		if resp.StatusCode == http.StatusSwitchingProtocols {
			x.switched = true
			if x.timer != nil {
				x.timer.Stop()
			}
		}
		x.rt.ResponseHeaders.Apply(resp.Header)
		if x.setCookie != "" {
			resp.Header.Add("Set-Cookie", x.setCookie)
		}
		return resp, nil
	}
}

func release(f func()) {
	if f != nil {
		f()
	}
}

// retryError reports whether a failure without an answer is retried.
func retryError(p *route.RetryPolicy, k errKind) bool {
	if k == kindCancelled {
		return false
	}
	if p.On&(route.Retry5xx|route.RetryGatewayError|route.RetryReset) != 0 {
		return true
	}
	switch k {
	case kindConnect:
		return p.On&route.RetryConnectFailure != 0
	case kindRefused:
		return p.On&route.RetryRefusedStream != 0
	}
	return false
}

func resultOfError(k errKind) balancer.Result {
	switch k {
	case kindCancelled:
		return balancer.ResultCancelled
	case kindTimeout:
		return balancer.ResultGatewayError
	}
	return balancer.ResultConnectFailure
}

func resultOfStatus(code int) balancer.Result {
	switch {
	case code < 500:
		return balancer.ResultSuccess
	case code == 502 || code == 503 || code == 504:
		return balancer.ResultGatewayError
	}
	return balancer.ResultServerError
}

// backoff is the wait before retry n (1, 2, ...): full jitter over an
// exponentially growing window, capped.
func backoff(p *route.RetryPolicy, n int) time.Duration {
	window := p.BackoffMax
	if n < 30 {
		if w := p.BackoffBase << (n - 1); w > 0 && w < window {
			window = w
		}
	}
	if window <= 0 {
		return 0
	}
	return rand.N(window) + 1
}

// sleep waits d unless ctx ends first; it reports whether ctx is alive.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// discard closes a failed attempt's answer, reading a small, complete
// body first so its HTTP/1 connection can be reused.
func discard(resp *http.Response) {
	if resp == nil {
		return
	}
	if resp.ContentLength >= 0 && resp.ContentLength <= 4096 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	}
	resp.Body.Close()
}
