package xdsresource

import (
	"errors"
	"fmt"
	"time"
)

// This file decodes a cluster's traffic-management fields: load-balancer
// configs, circuit breakers with their retry budget, and outlier detection.

// Envoy's defaults for circuit breakers, retry budgets and outlier
// detection.
const (
	defaultMaxConnections     = 1024
	defaultMaxPendingRequests = 1024
	defaultMaxRequests        = 1024
	defaultMaxRetries         = 3
	defaultBudgetPercent      = 20.0
	defaultMinRetryConcurrent = 3

	defaultConsecutive5xx            = 5
	defaultEnforcing5xx              = 100
	defaultConsecutiveGatewayFailure = 5
	defaultEnforcingGatewayFailure   = 0
	defaultOutlierInterval           = 10 * time.Second
	defaultBaseEjectionTime          = 30 * time.Second
	defaultMaxEjectionTime           = 300 * time.Second
	defaultMaxEjectionPercent        = 10

	// maxRingSize is the largest ring Envoy accepts.
	maxRingSize = 8 * 1024 * 1024
)

// decodeLeastRequestConfig decodes an
// envoy.config.cluster.v3.Cluster.LeastRequestLbConfig: the proxy picks the
// least loaded of two random endpoints.
func decodeLeastRequestConfig(b []byte) error {
	var choices msg
	err := walk(b, func(f field) error {
		switch f.num {
		case 1:
			return at("choice_count", choices.add(f))
		case 2:
			return notSupported("active_request_bias")
		case 3:
			return notSupported("slow_start_config")
		}
		return nil
	})
	if err != nil || !choices.set {
		return err
	}
	n, err := decodeUInt32Value(choices.b)
	if err == nil && n != 2 {
		err = fmt.Errorf("%d: %w (only 2)", n, errNotSupported)
	}
	return at("choice_count", err)
}

// decodeRingHashConfig decodes an
// envoy.config.cluster.v3.Cluster.RingHashLbConfig into its ring sizes
// (0: unset). Its hash_function is ignored: the proxy hashes with FNV-1a.
func decodeRingHashConfig(b []byte) (minSize, maxSize uint64, err error) {
	var minMsg, maxMsg msg
	err = walk(b, func(f field) error {
		switch f.num {
		case 1:
			return at("minimum_ring_size", minMsg.add(f))
		case 4:
			return at("maximum_ring_size", maxMsg.add(f))
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for _, s := range []struct {
		name string
		m    msg
		v    *uint64
	}{{"minimum_ring_size", minMsg, &minSize}, {"maximum_ring_size", maxMsg, &maxSize}} {
		if !s.m.set {
			continue
		}
		v, err := decodeUInt64Value(s.m.b)
		if err == nil && v > maxRingSize {
			err = fmt.Errorf("%d exceeds %d", v, maxRingSize)
		}
		if err != nil {
			return 0, 0, at(s.name, err)
		}
		*s.v = v
	}
	if minSize > 0 && maxSize > 0 && minSize > maxSize {
		return 0, 0, at("minimum_ring_size", fmt.Errorf("%d exceeds maximum_ring_size %d", minSize, maxSize))
	}
	return minSize, maxSize, nil
}

// decodeRoundRobinConfig decodes an
// envoy.config.cluster.v3.Cluster.RoundRobinLbConfig, which has nothing the
// proxy implements.
func decodeRoundRobinConfig(b []byte) error {
	return walk(b, func(f field) error {
		if f.num == 1 {
			return notSupported("slow_start_config")
		}
		return nil
	})
}

// defaultCircuitBreakers are the limits of a cluster without
// circuit_breakers, or whose thresholds leave them unset.
func defaultCircuitBreakers() CircuitBreakers {
	return CircuitBreakers{
		MaxConnections:     defaultMaxConnections,
		MaxPendingRequests: defaultMaxPendingRequests,
		MaxRequests:        defaultMaxRequests,
		MaxRetries:         defaultMaxRetries,
	}
}

// decodeCircuitBreakers decodes an envoy.config.cluster.v3.CircuitBreakers.
// The proxy has no request priorities: it honours the first threshold of
// priority DEFAULT (as Envoy picks it) and ignores HIGH ones.
func decodeCircuitBreakers(b []byte) (CircuitBreakers, error) {
	var thresholds [][]byte
	err := walk(b, func(f field) error {
		switch f.num {
		case 1:
			tb, err := f.message()
			thresholds = append(thresholds, tb)
			return atIndex("thresholds", len(thresholds)-1, err)
		case 2:
			return notSupported("per_host_thresholds")
		}
		return nil
	})
	if err != nil {
		return CircuitBreakers{}, err
	}
	cb := defaultCircuitBreakers()
	found := false
	for i, tb := range thresholds {
		t, priority, err := decodeThresholds(tb)
		if err != nil {
			return CircuitBreakers{}, atIndex("thresholds", i, err)
		}
		if priority == 0 && !found { // DEFAULT
			cb, found = t, true
		}
	}
	return cb, nil
}

// decodeThresholds decodes an
// envoy.config.cluster.v3.CircuitBreakers.Thresholds and its priority.
func decodeThresholds(b []byte) (CircuitBreakers, int32, error) {
	var (
		priority                            int32
		connections, pending, requests, try msg
		budget                              msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			priority, err = f.int32()
			err = at("priority", err)
		case 2:
			err = at("max_connections", connections.add(f))
		case 3:
			err = at("max_pending_requests", pending.add(f))
		case 4:
			err = at("max_requests", requests.add(f))
		case 5:
			err = at("max_retries", try.add(f))
		case 7:
			err = notSupported("max_connection_pools")
		case 8:
			err = at("retry_budget", budget.add(f))
		}
		return err
	})
	if err != nil {
		return CircuitBreakers{}, 0, err
	}
	if priority != 0 && priority != 1 {
		return CircuitBreakers{}, 0, at("priority", fmt.Errorf("value %d: %w", priority, errNotSupported))
	}
	cb := defaultCircuitBreakers()
	for _, l := range []struct {
		name string
		m    msg
		v    *uint32
	}{
		{"max_connections", connections, &cb.MaxConnections},
		{"max_pending_requests", pending, &cb.MaxPendingRequests},
		{"max_requests", requests, &cb.MaxRequests},
		{"max_retries", try, &cb.MaxRetries},
	} {
		if *l.v, err = optUInt32(l.m, *l.v); err != nil {
			return CircuitBreakers{}, 0, at(l.name, err)
		}
	}
	cb.MaxRetriesSet = try.set
	if budget.set {
		if cb.RetryBudget, err = decodeRetryBudget(budget.b); err != nil {
			return CircuitBreakers{}, 0, at("retry_budget", err)
		}
	}
	return cb, priority, nil
}

// decodeRetryBudget decodes an
// envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget, which
// has Weft semantics (see RetryBudget). A budget_interval is an error: the
// proxy counts the requests of the last 10 s.
func decodeRetryBudget(b []byte) (*RetryBudget, error) {
	var percent, concurrency, interval msg
	err := walk(b, func(f field) error {
		switch f.num {
		case 1:
			return at("budget_percent", percent.add(f))
		case 2:
			return at("min_retry_concurrency", concurrency.add(f))
		case 3:
			return at("budget_interval", interval.add(f))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rb := RetryBudget{Percent: defaultBudgetPercent, MinPerSecond: defaultMinRetryConcurrent}
	if percent.set {
		if rb.Percent, err = decodePercent(percent.b); err != nil {
			return nil, at("budget_percent", err)
		}
	}
	if rb.MinPerSecond, err = optUInt32(concurrency, rb.MinPerSecond); err != nil {
		return nil, at("min_retry_concurrency", err)
	}
	if d, err := optDuration(interval, 0); err != nil || d != 0 {
		if err == nil {
			err = fmt.Errorf("%v: %w (Weft counts the requests of the last 10s)", d, errNotSupported)
		}
		return nil, at("budget_interval", err)
	}
	return &rb, nil
}

// decodeOutlierDetection decodes an envoy.config.cluster.v3.OutlierDetection
// with Envoy's defaults filled in. The proxy ejects on consecutive 5xx and
// consecutive gateway failures only: success-rate and failure-percentage
// ejection are errors when their enforcing_* percentage is set above 0.
// (Envoy's enforcing_success_rate defaults to 100; the proxy takes an unset
// one as 0: it does no success-rate ejection.) Fields that only tune the
// ejections the proxy does not do are ignored, as are
// max_ejection_time_jitter and always_eject_one_host (the proxy may always
// eject one endpoint).
func decodeOutlierDetection(b []byte) (*OutlierDetection, error) {
	var (
		consecutive5xx, enforcing5xx         msg
		consecutiveGateway, enforcingGateway msg
		interval, baseEjection, maxEjection  msg
		maxPercent                           msg
		successRate, failurePercentage       msg
		detectDegraded                       msg
		splitLocalOrigin                     bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("consecutive_5xx", consecutive5xx.add(f))
		case 2:
			err = at("interval", interval.add(f))
		case 3:
			err = at("base_ejection_time", baseEjection.add(f))
		case 4:
			err = at("max_ejection_percent", maxPercent.add(f))
		case 5:
			err = at("enforcing_consecutive_5xx", enforcing5xx.add(f))
		case 6:
			err = at("enforcing_success_rate", successRate.add(f))
		case 10:
			err = at("consecutive_gateway_failure", consecutiveGateway.add(f))
		case 11:
			err = at("enforcing_consecutive_gateway_failure", enforcingGateway.add(f))
		case 12:
			splitLocalOrigin, err = f.bool()
			err = at("split_external_local_origin_errors", err)
		case 17:
			err = at("enforcing_failure_percentage", failurePercentage.add(f))
		case 21:
			err = at("max_ejection_time", maxEjection.add(f))
		case 24:
			err = notSupported("monitors")
		case 26:
			err = at("detect_degraded_hosts", detectDegraded.add(f))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if splitLocalOrigin {
		return nil, notSupported("split_external_local_origin_errors")
	}
	if err := refuseTrue(detectDegraded, "detect_degraded_hosts"); err != nil {
		return nil, err
	}
	for _, e := range []struct {
		name string
		m    msg
	}{{"enforcing_success_rate", successRate}, {"enforcing_failure_percentage", failurePercentage}} {
		v, err := optUInt32(e.m, 0)
		if err == nil && v > 0 {
			err = fmt.Errorf("%d: %w (the proxy ejects on consecutive errors only)", v, errNotSupported)
		}
		if err != nil {
			return nil, at(e.name, err)
		}
	}

	od := OutlierDetection{}
	for _, c := range []struct {
		name    string
		m       msg
		v       *uint32
		def     uint32
		percent bool
	}{
		{"consecutive_5xx", consecutive5xx, &od.Consecutive5xx, defaultConsecutive5xx, false},
		{"enforcing_consecutive_5xx", enforcing5xx, &od.Enforcing5xx, defaultEnforcing5xx, true},
		{"consecutive_gateway_failure", consecutiveGateway, &od.ConsecutiveGatewayFailure, defaultConsecutiveGatewayFailure, false},
		{"enforcing_consecutive_gateway_failure", enforcingGateway, &od.EnforcingGatewayFailure, defaultEnforcingGatewayFailure, true},
		{"max_ejection_percent", maxPercent, &od.MaxEjectionPercent, defaultMaxEjectionPercent, true},
	} {
		*c.v, err = optUInt32(c.m, c.def)
		if err == nil && c.percent && *c.v > 100 {
			err = fmt.Errorf("%d exceeds 100", *c.v)
		}
		if err != nil {
			return nil, at(c.name, err)
		}
	}
	for _, d := range []struct {
		name string
		m    msg
		v    *time.Duration
		def  time.Duration
	}{
		{"interval", interval, &od.Interval, defaultOutlierInterval},
		{"base_ejection_time", baseEjection, &od.BaseEjectionTime, defaultBaseEjectionTime},
		{"max_ejection_time", maxEjection, &od.MaxEjectionTime, defaultMaxEjectionTime},
	} {
		if *d.v, err = positiveDuration(d.m, d.def); err != nil {
			return nil, at(d.name, err)
		}
	}
	if od.MaxEjectionTime < od.BaseEjectionTime {
		return nil, at("max_ejection_time", fmt.Errorf("%v is less than base_ejection_time %v", od.MaxEjectionTime, od.BaseEjectionTime))
	}
	return &od, nil
}

// decodeCommonHTTPOptions decodes an envoy.config.core.v3.HttpProtocolOptions
// into its idle_timeout (0: unset). Its other limits (max_requests_per_connection,
// max_connection_duration, max_stream_duration, max_headers_count, ...) are
// ignored: the proxy does not enforce them on upstream connections.
func decodeCommonHTTPOptions(b []byte) (time.Duration, error) {
	var idle msg
	err := walk(b, func(f field) error {
		if f.num == 1 {
			return at("idle_timeout", idle.add(f))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	d, err := optDuration(idle, 0)
	return d, at("idle_timeout", err)
}

// errBothCommonHTTPOptions is the error for a cluster with both the
// deprecated common_http_protocol_options and the typed HTTP options.
var errBothCommonHTTPOptions = errors.New("cannot be used with typed_extension_protocol_options[\"" + httpOptionsKey + "\"]")
