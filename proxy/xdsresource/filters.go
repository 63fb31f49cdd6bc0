package xdsresource

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Message names of the HTTP filters' configurations.
const (
	faultMessage          = "envoy.extensions.filters.http.fault.v3.HTTPFault"
	localRateLimitMessage = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
	// filterConfigMessage wraps a per-route filter config
	// (envoy.config.route.v3.FilterConfig).
	filterConfigMessage = "envoy.config.route.v3.FilterConfig"
)

// minFillInterval is the shortest token bucket fill_interval Envoy's local
// rate limit accepts.
const minFillInterval = 50 * time.Millisecond

// filterMessages maps the HTTP filters the proxy implements to the message
// of their configuration.
var filterMessages = map[string]string{
	FilterFault:          faultMessage,
	FilterLocalRateLimit: localRateLimitMessage,
}

// decodePerFilterConfigs decodes a Route's typed_per_filter_config (by
// key; as in a map, a later entry has replaced an earlier one with the same
// key) into r. Keys are HTTP filter names: FilterFault takes an HTTPFault,
// FilterLocalRateLimit a LocalRateLimit, either bare or wrapped in a
// FilterConfig. A config for any other filter is an error unless it is a
// FilterConfig with is_optional.
func decodePerFilterConfigs(configs map[string][]byte, r *RouteExtras) error {
	for _, key := range slices.Sorted(maps.Keys(configs)) {
		if err := decodePerFilterConfig(key, configs[key], r); err != nil {
			return atKey("typed_per_filter_config", key, err)
		}
	}
	return nil
}

// decodePerFilterConfig decodes b, the Any of typed_per_filter_config[key].
func decodePerFilterConfig(key string, b []byte, r *RouteExtras) error {
	a, err := decodeAny(b)
	if err != nil {
		return err
	}
	optional := false
	if typeName(a.typeURL) == filterConfigMessage {
		var config msg
		var disabled bool
		err := walk(a.value, func(f field) error {
			var err error
			switch f.num {
			case 1:
				err = at("config", config.add(f))
			case 2:
				optional, err = f.bool()
				err = at("is_optional", err)
			case 3:
				disabled, err = f.bool()
				err = at("disabled", err)
			}
			return err
		})
		switch {
		case err != nil:
			return err
		case disabled:
			return notSupported("disabled")
		case !config.set:
			return at("config", errMissing)
		}
		if a, err = decodeAny(config.b); err != nil {
			return at("config", err)
		}
	}
	want, known := filterMessages[key]
	switch {
	case !known && optional:
		return nil
	case !known:
		return fmt.Errorf("filter %q: %w (the proxy implements %s and %s)", key, errNotSupported, FilterFault, FilterLocalRateLimit)
	case typeName(a.typeURL) != want:
		return fmt.Errorf("type %q, want %q", a.typeURL, want)
	}
	switch key {
	case FilterFault:
		r.Fault, err = decodeHTTPFault(a.value)
	case FilterLocalRateLimit:
		r.RateLimit, err = decodeLocalRateLimit(a.value)
	}
	return err
}

// decodeHTTPFault decodes an envoy.extensions.filters.http.fault.v3.HTTPFault
// into a Fault, nil when it injects nothing. The runtime keys are ignored
// (the proxy has no runtime); fault conditions and limits the proxy cannot
// honour are errors.
func decodeHTTPFault(b []byte) (*Fault, error) {
	var (
		delay, abort    msg
		upstreamCluster string
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("delay", delay.add(f))
		case 2:
			err = at("abort", abort.add(f))
		case 3:
			upstreamCluster, err = f.string()
			err = at("upstream_cluster", err)
		case 4:
			err = notSupported("headers")
		case 5:
			err = notSupported("downstream_nodes")
		case 6:
			err = notSupported("max_active_faults")
		case 7:
			err = notSupported("response_rate_limit")
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case upstreamCluster != "":
		return nil, notSupported("upstream_cluster")
	case !delay.set && !abort.set:
		return nil, nil
	}
	var fault Fault
	if delay.set {
		if fault.Delay, fault.DelayPerMillion, err = decodeFaultDelay(delay.b); err != nil {
			return nil, at("delay", err)
		}
	}
	if abort.set {
		if err := decodeFaultAbort(abort.b, &fault); err != nil {
			return nil, at("abort", err)
		}
	}
	return &fault, nil
}

// decodeFaultDelay decodes an
// envoy.extensions.filters.common.fault.v3.FaultDelay. As in Envoy, an
// unset percentage is 0%.
func decodeFaultDelay(b []byte) (time.Duration, uint32, error) {
	var (
		spec       oneof
		percentage msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 3, 5: // fixed_delay, header_delay
			err = spec.message(f)
		case 4:
			err = at("percentage", percentage.add(f))
		}
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	var d time.Duration
	switch spec.num {
	case 0:
		return 0, 0, at("fixed_delay", errMissing)
	case 5:
		return 0, 0, notSupported("header_delay")
	case 3:
		if d, err = decodeDuration(spec.f.b); err != nil {
			return 0, 0, at("fixed_delay", err)
		}
	}
	var perMillion uint32
	if percentage.set {
		if perMillion, err = decodeFractionalPercent(percentage.b); err != nil {
			return 0, 0, at("percentage", err)
		}
	}
	return d, perMillion, nil
}

// decodeFaultAbort decodes an
// envoy.extensions.filters.http.fault.v3.FaultAbort into fault. As in Envoy,
// an unset percentage is 0%.
func decodeFaultAbort(b []byte, fault *Fault) error {
	var (
		spec         oneof
		percentage   msg
		responseBody string
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 2, 5: // http_status, grpc_status
			err = spec.scalar(f, protowire.VarintType)
		case 4: // header_abort
			err = spec.message(f)
		case 3:
			err = at("percentage", percentage.add(f))
		case 6:
			responseBody, err = f.string()
			err = at("response_body", err)
		}
		return err
	})
	switch {
	case err != nil:
		return err
	case responseBody != "":
		return notSupported("response_body")
	}
	switch spec.num {
	case 0:
		return errors.New("one of http_status and grpc_status must be set")
	case 4:
		return notSupported("header_abort")
	case 2:
		status, _ := spec.f.uint32()
		if status < 200 || status > 599 {
			return at("http_status", fmt.Errorf("%d out of range 200..599", status))
		}
		fault.AbortStatus = int(status)
	case 5:
		fault.AbortGRPCStatus, _ = spec.f.uint32()
		fault.HasGRPCAbort = true
	}
	if percentage.set {
		if fault.AbortPerMillion, err = decodeFractionalPercent(percentage.b); err != nil {
			return at("percentage", err)
		}
	}
	return nil
}

// decodeLocalRateLimit decodes an
// envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit. Over the
// limit the proxy answers 429 with Retry-After; descriptors, per-connection
// limits and custom answers are errors.
func decodeLocalRateLimit(b []byte) (*LocalRateLimit, error) {
	var (
		l                       LocalRateLimit
		status, bucket          msg
		enabled, enforced       msg
		perConnection, grpcCode bool
		rateLimitHeaders        int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			l.StatPrefix, err = f.string()
			err = at("stat_prefix", err)
		case 2:
			err = at("status", status.add(f))
		case 3:
			err = at("token_bucket", bucket.add(f))
		case 4:
			err = at("filter_enabled", enabled.add(f))
		case 5:
			err = at("filter_enforced", enforced.add(f))
		case 6:
			err = notSupported("response_headers_to_add")
		case 8:
			err = notSupported("descriptors")
		case 10:
			err = notSupported("request_headers_to_add_when_not_enforced")
		case 11:
			perConnection, err = f.bool()
			err = at("local_rate_limit_per_downstream_connection", err)
		case 12:
			rateLimitHeaders, err = f.int32()
			err = at("enable_x_ratelimit_headers", err)
		case 15:
			grpcCode, err = f.bool()
			err = at("rate_limited_as_resource_exhausted", err)
		case 16:
			err = notSupported("local_cluster_rate_limit")
		case 17:
			err = notSupported("rate_limits")
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case l.StatPrefix == "":
		return nil, at("stat_prefix", errEmpty)
	case perConnection:
		return nil, notSupported("local_rate_limit_per_downstream_connection")
	case rateLimitHeaders != 0:
		return nil, notSupported("enable_x_ratelimit_headers")
	case grpcCode:
		return nil, notSupported("rate_limited_as_resource_exhausted")
	}
	if status.set {
		if err := checkRateLimitStatus(status.b); err != nil {
			return nil, at("status", err)
		}
	}
	if bucket.set {
		if l.Bucket, err = decodeTokenBucket(bucket.b); err != nil {
			return nil, at("token_bucket", err)
		}
	}
	if enabled.set {
		if l.Enabled, err = decodeRuntimeFractionalPercent(enabled.b); err != nil {
			return nil, at("filter_enabled", err)
		}
	}
	if enforced.set {
		if l.Enforced, err = decodeRuntimeFractionalPercent(enforced.b); err != nil {
			return nil, at("filter_enforced", err)
		}
	}
	return &l, nil
}

// checkRateLimitStatus checks an envoy.type.v3.HttpStatus: the proxy
// answers a limited request with 429 only.
func checkRateLimitStatus(b []byte) error {
	var code int32
	err := walk(b, func(f field) error {
		var err error
		if f.num == 1 {
			code, err = f.int32()
			err = at("code", err)
		}
		return err
	})
	if err == nil && code != 0 && code != 429 {
		err = at("code", fmt.Errorf("%d: %w (the proxy answers 429)", code, errNotSupported))
	}
	return err
}

// decodeTokenBucket decodes an envoy.type.v3.TokenBucket.
func decodeTokenBucket(b []byte) (*TokenBucket, error) {
	var (
		t              TokenBucket
		perFill, every msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			t.MaxTokens, err = f.uint32()
			err = at("max_tokens", err)
		case 2:
			err = at("tokens_per_fill", perFill.add(f))
		case 3:
			err = at("fill_interval", every.add(f))
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case t.MaxTokens == 0:
		return nil, at("max_tokens", errors.New("must be positive"))
	case !every.set:
		return nil, at("fill_interval", errMissing)
	}
	if t.TokensPerFill, err = optUInt32(perFill, 1); err == nil && t.TokensPerFill == 0 {
		err = errors.New("must be positive")
	}
	if err != nil {
		return nil, at("tokens_per_fill", err)
	}
	if t.FillInterval, err = decodeDuration(every.b); err == nil && t.FillInterval < minFillInterval {
		err = fmt.Errorf("%v is shorter than %v", t.FillInterval, minFillInterval)
	}
	if err != nil {
		return nil, at("fill_interval", err)
	}
	return &t, nil
}
