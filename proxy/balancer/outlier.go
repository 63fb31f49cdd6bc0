package balancer

import (
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Outlier-detection defaults for zero durations (Envoy's).
const (
	defaultInterval         = 10 * time.Second
	defaultBaseEjectionTime = 30 * time.Second
	defaultMaxEjectionTime  = 300 * time.Second
)

func (e *Endpoint) begin() Done {
	h, p := e.host, e.picker
	if h == nil || p == nil {
		return func(Result) {}
	}
	h.inFlight.Add(1)
	var done atomic.Bool
	return func(r Result) {
		if done.Swap(true) {
			return
		}
		h.inFlight.Add(-1)
		if od := p.cfg.Outlier; od != nil {
			p.state.observe(h, r, od)
		}
	}
}

// observe counts a request's result toward the host's consecutive
// failures and ejects the host when a threshold whose enforcement draw
// succeeds is reached. Results of a host already ejected are ignored.
func (s *State) observe(h *hostState, r Result, od *xdsresource.OutlierDetection) {
	var n5xx, nGateway uint32
	switch r {
	case ResultSuccess:
		if h.consec5xx.Load() != 0 {
			h.consec5xx.Store(0)
		}
		if h.consecGateway.Load() != 0 {
			h.consecGateway.Store(0)
		}
		return
	case ResultServerError, ResultGatewayError, ResultConnectFailure:
	default:
		return
	}
	now := s.now().UnixNano()
	if h.ejectedUntil.Load() > now {
		return
	}
	n5xx = h.consec5xx.Add(1)
	if r == ResultServerError {
		// Another 5xx breaks a run of gateway failures (as Envoy).
		h.consecGateway.Store(0)
	} else {
		nGateway = h.consecGateway.Add(1)
	}
	// A threshold fires once, when the count reaches it; the counter then
	// starts over whether or not the ejection is enforced (as Envoy).
	eject := false
	if t := od.Consecutive5xx; t > 0 && n5xx == t {
		h.consec5xx.Store(0)
		eject = s.enforce(od.Enforcing5xx)
	}
	if t := od.ConsecutiveGatewayFailure; t > 0 && nGateway == t {
		h.consecGateway.Store(0)
		eject = s.enforce(od.EnforcingGatewayFailure) || eject
	}
	if eject {
		s.eject(h, od, now)
	}
}

// enforce draws whether an ejection enforced at percent % happens.
func (s *State) enforce(percent uint32) bool {
	switch {
	case percent >= 100:
		return true
	case percent == 0:
		return false
	}
	return s.rand()%100 < uint64(percent)
}

// eject ejects h for base ejection time × times ejected (capped by the
// max ejection time), unless that would eject more than max ejection
// percent of the cluster's endpoints — but one ejection is always allowed.
func (s *State) eject(h *hostState, od *xdsresource.OutlierDetection, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.ejectedUntil.Load() > now {
		return
	}
	ejected := 0
	for _, o := range s.hosts {
		if o.ejectedUntil.Load() > now {
			ejected++
		}
	}
	if ejected > 0 && uint64(ejected+1)*100 > uint64(od.MaxEjectionPercent)*uint64(len(s.hosts)) {
		return
	}
	base := orDefault(od.BaseEjectionTime, defaultBaseEjectionTime)
	maxTime := max(base, orDefault(od.MaxEjectionTime, defaultMaxEjectionTime))
	interval := orDefault(od.Interval, defaultInterval)
	// The multiplier decays by one for every interval the host has spent
	// back in service since its last ejection ended.
	if last := h.ejectedUntil.Load(); h.timesEjected > 0 && last > 0 && now > last {
		h.timesEjected = max(0, h.timesEjected-(now-last)/int64(interval))
	}
	// It stops growing once the ejection time reaches the cap (so that it
	// decays back in a bounded time).
	capTimes := int64((maxTime + base - 1) / base)
	h.timesEjected = min(h.timesEjected+1, capTimes)
	d := min(maxTime, base*time.Duration(h.timesEjected))
	until := now + int64(d)
	h.ejectedUntil.Store(until)
	if until > s.ejectHorizon.Load() {
		s.ejectHorizon.Store(until)
	}
	s.ejections.Add(1)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
