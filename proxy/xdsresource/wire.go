package xdsresource

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file holds the wire-level machinery shared by the decoders: walking
// the fields of a message, reading scalars with their protobuf semantics,
// and the well-known types (Any, Duration, wrappers) and core.v3 Address.
//
// Protobuf semantics the decoders keep, so that they read a message exactly
// as the generated code would:
//   - a scalar field seen more than once: the last occurrence wins;
//   - a singular message field seen more than once: the occurrences are
//     merged, which on the wire is concatenation (see msg);
//   - a oneof: the member seen last wins; a message member seen more than
//     once is merged (see oneof);
//   - a map entry with a key seen before replaces the earlier entry.
//
// A field the decoders read that comes with the wrong wire type is an error:
// no encoder produces one, and the generated code would only keep it as an
// unknown field. Map entries are the exception: there the generated code
// drops such a key or value, and so do the decoders.

// Causes shared by many errors.
var (
	// errNotSupported is for a field the proxy knows but cannot honour.
	errNotSupported = errors.New("not supported")
	errMissing      = errors.New("must be set")
	errEmpty        = errors.New("must not be empty")
)

// field is one field of a message as it appears on the wire.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64 // VarintType, Fixed32Type, Fixed64Type
	b   []byte // BytesType; aliases the input
}

// walk calls fn for each field of the message encoded in b, in wire order.
// Groups are skipped whole. It fails on malformed wire data and stops at the
// first error fn returns.
func walk(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireError(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u = uint64(v)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return wireError(n)
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func wireError(n int) error {
	return fmt.Errorf("malformed wire data: %w", protowire.ParseError(n))
}

func (f field) want(t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("field %d: wire type %d, want %d", f.num, f.typ, t)
	}
	return nil
}

// message returns the encoding of an embedded message.
func (f field) message() ([]byte, error) {
	if err := f.want(protowire.BytesType); err != nil {
		return nil, err
	}
	return f.b, nil
}

// string returns a string field, which proto3 requires to be valid UTF-8.
func (f field) string() (string, error) {
	if err := f.want(protowire.BytesType); err != nil {
		return "", err
	}
	if !utf8.Valid(f.b) {
		return "", fmt.Errorf("field %d: invalid UTF-8", f.num)
	}
	return string(f.b), nil
}

// uint32 returns a uint32 field (truncated as protobuf does).
func (f field) uint32() (uint32, error) {
	if err := f.want(protowire.VarintType); err != nil {
		return 0, err
	}
	return uint32(f.u), nil
}

// int32 returns an int32 or enum field (truncated as protobuf does).
func (f field) int32() (int32, error) {
	if err := f.want(protowire.VarintType); err != nil {
		return 0, err
	}
	return int32(f.u), nil
}

func (f field) int64() (int64, error) {
	if err := f.want(protowire.VarintType); err != nil {
		return 0, err
	}
	return int64(f.u), nil
}

func (f field) bool() (bool, error) {
	if err := f.want(protowire.VarintType); err != nil {
		return false, err
	}
	return f.u != 0, nil
}

// msg collects the occurrences of a singular message field.
type msg struct {
	set bool
	b   []byte
}

func (m *msg) add(f field) error {
	b, err := f.message()
	if err != nil {
		return err
	}
	m.b = concat(m.set, m.b, b)
	m.set = true
	return nil
}

// oneof tracks which member of a oneof is set: the one seen last.
type oneof struct {
	num protowire.Number // 0 when no member is set
	f   field            // the member; a message member's occurrences merged
}

// scalar records a scalar (or string) member of wire type t.
func (o *oneof) scalar(f field, t protowire.Type) error {
	if err := f.want(t); err != nil {
		return err
	}
	o.num, o.f = f.num, f
	return nil
}

// message records a message member.
func (o *oneof) message(f field) error {
	b, err := f.message()
	if err != nil {
		return err
	}
	if o.num == f.num {
		o.f.b = concat(true, o.f.b, b)
		return nil
	}
	o.num, o.f = f.num, f
	return nil
}

// concat returns a followed by b, which for two encodings of one message is
// their merge. It never writes to the input.
func concat(haveA bool, a, b []byte) []byte {
	if !haveA {
		return b
	}
	out := make([]byte, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

// decodeMapEntry decodes f, an entry of a map field with string keys and
// message values. A missing key is "" and a missing value an empty message.
// As in the generated code, a key or value of the wrong wire type is
// skipped.
func decodeMapEntry(f field) (key string, value []byte, err error) {
	b, err := f.message()
	if err != nil {
		return "", nil, err
	}
	var v msg
	err = walk(b, func(f field) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		var err error
		switch f.num {
		case 1:
			key, err = f.string()
			err = at("key", err)
		case 2:
			err = at("value", v.add(f))
		}
		return err
	})
	return key, v.b, err
}

// pathError is an error at a field path inside a resource, such as
// "virtual_hosts[0].routes[2].match.safe_regex".
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

// at prefixes the path of err with the name of the field it was found in.
func at(name string, err error) error {
	if err == nil {
		return nil
	}
	if pe, ok := err.(*pathError); ok {
		if strings.HasPrefix(pe.path, "[") {
			pe.path = name + pe.path
		} else {
			pe.path = name + "." + pe.path
		}
		return pe
	}
	return &pathError{path: name, err: err}
}

// atIndex is at for element i of a repeated field.
func atIndex(name string, i int, err error) error {
	if err == nil {
		return nil
	}
	return at(name+"["+strconv.Itoa(i)+"]", err)
}

// atKey is at for the value of key in a map field.
func atKey(name, key string, err error) error {
	if err == nil {
		return nil
	}
	return at(name+"["+strconv.Quote(key)+"]", err)
}

// notSupported is the error for field name, which the proxy cannot honour.
func notSupported(name string) error { return at(name, errNotSupported) }

// typeName is the full message name an Any's type URL names: the part after
// the last '/'.
func typeName(url string) string {
	return url[strings.LastIndexByte(url, '/')+1:]
}

// anyMsg is a decoded google.protobuf.Any.
type anyMsg struct {
	typeURL string
	value   []byte
}

// decodeAny decodes a google.protobuf.Any; its type URL must be set.
func decodeAny(b []byte) (anyMsg, error) {
	var a anyMsg
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			a.typeURL, err = f.string()
			err = at("type_url", err)
		case 2:
			a.value, err = f.message() // bytes: the last occurrence wins
			err = at("value", err)
		}
		return err
	})
	if err != nil {
		return anyMsg{}, err
	}
	if a.typeURL == "" {
		return anyMsg{}, at("type_url", errEmpty)
	}
	return a, nil
}

// decodeDuration decodes a google.protobuf.Duration that must be
// non-negative and fit in a time.Duration.
func decodeDuration(b []byte) (time.Duration, error) {
	var (
		secs  int64
		nanos int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			secs, err = f.int64()
		case 2:
			nanos, err = f.int32()
		}
		return err
	})
	switch {
	case err != nil:
		return 0, err
	case secs < 0 || nanos < 0:
		return 0, fmt.Errorf("negative duration %ds %dns", secs, nanos)
	case nanos >= 1e9:
		return 0, fmt.Errorf("nanos %d out of range", nanos)
	case secs > (math.MaxInt64-int64(nanos))/1e9:
		return 0, fmt.Errorf("duration of %ds out of range", secs)
	}
	return time.Duration(secs)*time.Second + time.Duration(nanos), nil
}

// decodeUInt32Value decodes a google.protobuf.UInt32Value.
func decodeUInt32Value(b []byte) (uint32, error) {
	var v uint32
	err := walk(b, func(f field) error {
		var err error
		if f.num == 1 {
			v, err = f.uint32()
		}
		return err
	})
	return v, err
}

// decodeBoolValue decodes a google.protobuf.BoolValue.
func decodeBoolValue(b []byte) (bool, error) {
	var v bool
	err := walk(b, func(f field) error {
		var err error
		if f.num == 1 {
			v, err = f.bool()
		}
		return err
	})
	return v, err
}

// decodeAddress decodes an envoy.config.core.v3.Address, which must be a
// TCP socket_address with a port_value, into "host:port".
func decodeAddress(b []byte) (string, error) {
	var addr oneof
	err := walk(b, func(f field) error {
		switch f.num {
		case 1, 2, 3: // socket_address, pipe, envoy_internal_address
			return addr.message(f)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	switch addr.num {
	case 0:
		return "", at("socket_address", errMissing)
	case 2:
		return "", notSupported("pipe")
	case 3:
		return "", notSupported("envoy_internal_address")
	}
	hostport, err := decodeSocketAddress(addr.f.b)
	return hostport, at("socket_address", err)
}

// decodeSocketAddress decodes an envoy.config.core.v3.SocketAddress.
func decodeSocketAddress(b []byte) (string, error) {
	var (
		protocol int32
		host     string
		resolver string
		port     oneof
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			protocol, err = f.int32()
			err = at("protocol", err)
		case 2:
			host, err = f.string()
			err = at("address", err)
		case 3: // port_value
			err = port.scalar(f, protowire.VarintType)
		case 4: // named_port
			err = port.scalar(f, protowire.BytesType)
		case 5:
			resolver, err = f.string()
			err = at("resolver_name", err)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if resolver != "" {
		return "", notSupported("resolver_name")
	}
	if protocol != 0 { // TCP
		return "", at("protocol", fmt.Errorf("%d: only TCP (0) is supported", protocol))
	}
	if host == "" {
		return "", at("address", errEmpty)
	}
	switch port.num {
	case 0:
		return "", at("port_value", errMissing)
	case 4:
		return "", notSupported("named_port")
	}
	p, err := port.f.uint32()
	if err != nil {
		return "", at("port_value", err)
	}
	if p == 0 || p > math.MaxUint16 {
		return "", at("port_value", fmt.Errorf("%d out of range 1..65535", p))
	}
	return net.JoinHostPort(host, strconv.FormatUint(uint64(p), 10)), nil
}

// uint32s appends the values of a repeated uint32 field to dst: protobuf
// accepts it packed (one length-delimited field) or not (one varint per
// value), whatever the schema says.
func (f field) uint32s(dst []uint32) ([]uint32, error) {
	if f.typ == protowire.VarintType {
		return append(dst, uint32(f.u)), nil
	}
	if err := f.want(protowire.BytesType); err != nil {
		return dst, err
	}
	for b := f.b; len(b) > 0; {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return dst, wireError(n)
		}
		dst = append(dst, uint32(v))
		b = b[n:]
	}
	return dst, nil
}

// optUInt32 decodes m, a google.protobuf.UInt32Value field, or returns def
// when it is not set.
func optUInt32(m msg, def uint32) (uint32, error) {
	if !m.set {
		return def, nil
	}
	return decodeUInt32Value(m.b)
}

// optDuration decodes m, a google.protobuf.Duration field, or returns def
// when it is not set.
func optDuration(m msg, def time.Duration) (time.Duration, error) {
	if !m.set {
		return def, nil
	}
	return decodeDuration(m.b)
}

// positiveDuration decodes m, a google.protobuf.Duration field that must be
// positive when set, or returns def when it is not set.
func positiveDuration(m msg, def time.Duration) (time.Duration, error) {
	d, err := optDuration(m, def)
	if err == nil && m.set && d <= 0 {
		err = errors.New("must be positive")
	}
	return d, err
}

// decodeUInt64Value decodes a google.protobuf.UInt64Value.
func decodeUInt64Value(b []byte) (uint64, error) {
	var v uint64
	err := walk(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		if err := f.want(protowire.VarintType); err != nil {
			return err
		}
		v = f.u
		return nil
	})
	return v, err
}

// decodePercent decodes an envoy.type.v3.Percent: a double in 0..100.
func decodePercent(b []byte) (float64, error) {
	var v float64
	err := walk(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		if err := f.want(protowire.Fixed64Type); err != nil {
			return at("value", err)
		}
		v = math.Float64frombits(f.u)
		return nil
	})
	if err == nil && !(v >= 0 && v <= 100) {
		err = at("value", fmt.Errorf("%v out of range 0..100", v))
	}
	return v, err
}

// Denominators of an envoy.type.v3.FractionalPercent, as multipliers to
// millionths: HUNDRED, TEN_THOUSAND, MILLION.
var perMillionOf = map[int32]uint64{0: 10000, 1: 100, 2: 1}

// decodeFractionalPercent decodes an envoy.type.v3.FractionalPercent into
// millionths. As in Envoy, a numerator above the denominator is 100%.
func decodeFractionalPercent(b []byte) (uint32, error) {
	var (
		numerator   uint32
		denominator int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			numerator, err = f.uint32()
			err = at("numerator", err)
		case 2:
			denominator, err = f.int32()
			err = at("denominator", err)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	scale, ok := perMillionOf[denominator]
	if !ok {
		return 0, at("denominator", fmt.Errorf("value %d: %w", denominator, errNotSupported))
	}
	return uint32(min(uint64(numerator)*scale, 1e6)), nil
}

// decodeRuntimeFractionalPercent decodes an
// envoy.config.core.v3.RuntimeFractionalPercent into its default_value in
// millionths: the proxy has no runtime, so runtime_key never overrides it.
func decodeRuntimeFractionalPercent(b []byte) (uint32, error) {
	var value msg
	err := walk(b, func(f field) error {
		if f.num == 1 {
			return at("default_value", value.add(f))
		}
		return nil
	})
	switch {
	case err != nil:
		return 0, err
	case !value.set:
		return 0, at("default_value", errMissing)
	}
	v, err := decodeFractionalPercent(value.b)
	return v, at("default_value", err)
}
