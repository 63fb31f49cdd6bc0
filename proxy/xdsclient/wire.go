package xdsclient

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers, from the generated code of
// github.com/envoyproxy/go-control-plane/envoy v1.40.0 and
// google.golang.org/protobuf v1.36.12 (struct tags).
const (
	// envoy.service.discovery.v3.DiscoveryRequest
	reqVersionInfo   protowire.Number = 1
	reqNode          protowire.Number = 2
	reqResourceNames protowire.Number = 3
	reqTypeURL       protowire.Number = 4
	reqResponseNonce protowire.Number = 5
	reqErrorDetail   protowire.Number = 6

	// envoy.service.discovery.v3.DiscoveryResponse
	respVersionInfo protowire.Number = 1
	respResources   protowire.Number = 2
	respTypeURL     protowire.Number = 4
	respNonce       protowire.Number = 5

	// google.protobuf.Any
	anyFieldTypeURL protowire.Number = 1
	anyFieldValue   protowire.Number = 2

	// envoy.config.core.v3.Node
	nodeID               protowire.Number = 1
	nodeCluster          protowire.Number = 2
	nodeMetadata         protowire.Number = 3
	nodeUserAgentName    protowire.Number = 6
	nodeUserAgentVersion protowire.Number = 7

	// google.rpc.Status
	statusCode    protowire.Number = 1
	statusMessage protowire.Number = 2

	// google.protobuf.Struct and its map entry
	structFields protowire.Number = 1
	entryKey     protowire.Number = 1
	entryValue   protowire.Number = 2

	// google.protobuf.Value (a oneof)
	valueNull   protowire.Number = 1
	valueNumber protowire.Number = 2
	valueString protowire.Number = 3
	valueBool   protowire.Number = 4
	valueStruct protowire.Number = 5
	valueList   protowire.Number = 6

	// google.protobuf.ListValue
	listValues protowire.Number = 1
)

// codeInvalidArgument is the google.rpc.Code Envoy puts in the
// error_detail of a NACK.
const codeInvalidArgument = 3

// maxMetadataDepth bounds the nesting of node metadata values, so that a
// self-referencing map fails cleanly instead of overflowing the stack.
const maxMetadataDepth = 32

// request is the content of one DiscoveryRequest. Names nil or empty is a
// wildcard subscription; nackMessage non-empty adds error_detail.
type request struct {
	version     string
	node        []byte // encoded envoy.config.core.v3.Node; nil to omit
	names       []string
	typeURL     string
	nonce       string
	nackMessage string
}

// appendRequest appends the wire form of r to b.
func appendRequest(b []byte, r request) []byte {
	b = appendString(b, reqVersionInfo, r.version)
	if r.node != nil {
		b = protowire.AppendTag(b, reqNode, protowire.BytesType)
		b = protowire.AppendBytes(b, r.node)
	}
	for _, n := range r.names {
		// Repeated strings are always written, even when empty.
		b = protowire.AppendTag(b, reqResourceNames, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	b = appendString(b, reqTypeURL, r.typeURL)
	b = appendString(b, reqResponseNonce, r.nonce)
	if r.nackMessage != "" {
		var st []byte
		st = protowire.AppendTag(st, statusCode, protowire.VarintType)
		st = protowire.AppendVarint(st, codeInvalidArgument)
		st = appendString(st, statusMessage, r.nackMessage)
		b = protowire.AppendTag(b, reqErrorDetail, protowire.BytesType)
		b = protowire.AppendBytes(b, st)
	}
	return b
}

// appendString appends a proto3 string field, omitting the default "".
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// encodeNode returns the wire form of an envoy.config.core.v3.Node.
// The result is never nil, so that an empty node is still sent.
func encodeNode(n Node) ([]byte, error) {
	b := make([]byte, 0, 128)
	b = appendString(b, nodeID, n.ID)
	b = appendString(b, nodeCluster, n.Cluster)
	if n.Metadata != nil {
		st, err := appendStruct(nil, n.Metadata, 0)
		if err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		b = protowire.AppendTag(b, nodeMetadata, protowire.BytesType)
		b = protowire.AppendBytes(b, st)
	}
	b = appendString(b, nodeUserAgentName, n.UserAgentName)
	b = appendString(b, nodeUserAgentVersion, n.UserAgentVersion)
	return b, nil
}

// appendStruct appends the wire form of a google.protobuf.Struct holding m.
// Keys are written in sorted order so the encoding is deterministic.
func appendStruct(b []byte, m map[string]any, depth int) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !utf8.ValidString(k) {
			return nil, fmt.Errorf("key %q is not valid UTF-8", k)
		}
		v, err := appendValue(nil, m[k], depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		var entry []byte
		entry = protowire.AppendTag(entry, entryKey, protowire.BytesType)
		entry = protowire.AppendString(entry, k)
		entry = protowire.AppendTag(entry, entryValue, protowire.BytesType)
		entry = protowire.AppendBytes(entry, v)
		b = protowire.AppendTag(b, structFields, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	return b, nil
}

// appendValue appends the wire form of a google.protobuf.Value holding v.
// Integers become number_value (float64), as in structpb.NewValue.
func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxMetadataDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxMetadataDepth)
	}
	var (
		nested []byte
		num    protowire.Number
		err    error
	)
	switch v := v.(type) {
	case nil:
		b = protowire.AppendTag(b, valueNull, protowire.VarintType)
		return protowire.AppendVarint(b, 0), nil
	case bool:
		b = protowire.AppendTag(b, valueBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v)), nil
	case string:
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("string %q is not valid UTF-8", v)
		}
		b = protowire.AppendTag(b, valueString, protowire.BytesType)
		return protowire.AppendString(b, v), nil
	case float64:
		return appendNumber(b, v), nil
	case float32:
		return appendNumber(b, float64(v)), nil
	case int:
		return appendNumber(b, float64(v)), nil
	case int32:
		return appendNumber(b, float64(v)), nil
	case int64:
		return appendNumber(b, float64(v)), nil
	case uint:
		return appendNumber(b, float64(v)), nil
	case uint32:
		return appendNumber(b, float64(v)), nil
	case uint64:
		return appendNumber(b, float64(v)), nil
	case map[string]any:
		num = valueStruct
		nested, err = appendStruct(nil, v, depth)
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		num = valueStruct
		nested, err = appendStruct(nil, m, depth)
	case []any:
		num = valueList
		nested, err = appendList(nil, v, depth)
	case []string:
		l := make([]any, len(v))
		for i, s := range v {
			l[i] = s
		}
		num = valueList
		nested, err = appendList(nil, l, depth)
	default:
		return nil, fmt.Errorf("unsupported type %T", v)
	}
	if err != nil {
		return nil, err
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, nested), nil
}

func appendNumber(b []byte, f float64) []byte {
	b = protowire.AppendTag(b, valueNumber, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(f))
}

// appendList appends the wire form of a google.protobuf.ListValue.
func appendList(b []byte, l []any, depth int) ([]byte, error) {
	for i, e := range l {
		v, err := appendValue(nil, e, depth+1)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		b = protowire.AppendTag(b, listValues, protowire.BytesType)
		b = protowire.AppendBytes(b, v)
	}
	return b, nil
}

// response is a decoded DiscoveryResponse. Fields the client does not use
// (canary, control_plane, resource_errors) are skipped.
type response struct {
	version   string
	typeURL   string
	nonce     string
	resources []anyValue
}

// anyValue is a decoded google.protobuf.Any. value aliases the buffer the
// response was decoded from.
type anyValue struct {
	typeURL string
	value   []byte
}

var errWireType = errors.New("wrong wire type")

// decodeResponse decodes the wire form of a DiscoveryResponse. The returned
// resource values alias b, which the caller must not modify afterwards.
func decodeResponse(b []byte) (response, error) {
	var r response
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return response{}, fmt.Errorf("discovery response: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var err error
		switch num {
		case respVersionInfo:
			r.version, n, err = consumeString(b, typ)
		case respTypeURL:
			r.typeURL, n, err = consumeString(b, typ)
		case respNonce:
			r.nonce, n, err = consumeString(b, typ)
		case respResources:
			var v []byte
			v, n, err = consumeBytes(b, typ)
			if err == nil {
				var a anyValue
				a, err = decodeAny(v)
				r.resources = append(r.resources, a)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				err = protowire.ParseError(n)
			}
		}
		if err != nil {
			return response{}, fmt.Errorf("discovery response: field %d: %w", num, err)
		}
		b = b[n:]
	}
	return r, nil
}

// decodeAny decodes the wire form of a google.protobuf.Any.
func decodeAny(b []byte) (anyValue, error) {
	var a anyValue
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return anyValue{}, fmt.Errorf("any: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var err error
		switch num {
		case anyFieldTypeURL:
			a.typeURL, n, err = consumeString(b, typ)
		case anyFieldValue:
			a.value, n, err = consumeBytes(b, typ)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				err = protowire.ParseError(n)
			}
		}
		if err != nil {
			return anyValue{}, fmt.Errorf("any: field %d: %w", num, err)
		}
		b = b[n:]
	}
	return a, nil
}

func consumeBytes(b []byte, typ protowire.Type) ([]byte, int, error) {
	if typ != protowire.BytesType {
		return nil, 0, errWireType
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, protowire.ParseError(n)
	}
	return v, n, nil
}

// consumeString consumes a proto3 string, which must be valid UTF-8.
func consumeString(b []byte, typ protowire.Type) (string, int, error) {
	v, n, err := consumeBytes(b, typ)
	if err != nil {
		return "", 0, err
	}
	if !utf8.Valid(v) {
		return "", 0, errors.New("string is not valid UTF-8")
	}
	return string(v), n, nil
}
