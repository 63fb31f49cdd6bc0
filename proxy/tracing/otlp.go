package tracing

import (
	"encoding/binary"
	"math"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the OTLP messages the proxy writes, from
// go.opentelemetry.io/proto/otlp v1.11.0 (opentelemetry-proto v1.x); the
// tests decode what is written here with those generated types.
const (
	// collector.trace.v1.ExportTraceServiceRequest
	exportResourceSpans protowire.Number = 1

	// trace.v1.ResourceSpans
	rsResource   protowire.Number = 1
	rsScopeSpans protowire.Number = 2

	// resource.v1.Resource
	resourceAttributes protowire.Number = 1

	// trace.v1.ScopeSpans
	ssScope protowire.Number = 1
	ssSpans protowire.Number = 2

	// common.v1.InstrumentationScope
	scopeName    protowire.Number = 1
	scopeVersion protowire.Number = 2

	// trace.v1.Span
	spanTraceID      protowire.Number = 1
	spanSpanID       protowire.Number = 2
	spanTraceState   protowire.Number = 3
	spanParentSpanID protowire.Number = 4
	spanName         protowire.Number = 5
	spanKind         protowire.Number = 6
	spanStart        protowire.Number = 7
	spanEnd          protowire.Number = 8
	spanAttributes   protowire.Number = 9
	spanStatus       protowire.Number = 15
	spanFlags        protowire.Number = 16

	// trace.v1.Status
	statusMessage protowire.Number = 2
	statusCode    protowire.Number = 3

	// common.v1.KeyValue
	kvKey   protowire.Number = 1
	kvValue protowire.Number = 2

	// common.v1.AnyValue (oneof)
	anyString protowire.Number = 1
	anyBool   protowire.Number = 2
	anyInt    protowire.Number = 3
	anyDouble protowire.Number = 4
)

// OTLP status codes.
const (
	statusUnset = 0
	statusOK    = 1
	statusError = 2
)

// spanFlagHasIsRemote | spanFlagIsRemote (SpanFlags): the parent was
// received from another process.
const (
	flagContextHasIsRemote = 0x100
	flagContextIsRemote    = 0x200
)

// attrKind is the type of an attribute's value.
type attrKind uint8

const (
	kindString attrKind = iota
	kindInt
	kindBool
	kindDouble
)

// Attr is one span or resource attribute.
type Attr struct {
	Key  string
	kind attrKind
	s    string
	n    int64
	f    float64
}

// String returns a string attribute.
func String(k, v string) Attr { return Attr{Key: k, kind: kindString, s: v} }

// Int returns an integer attribute.
func Int(k string, v int64) Attr { return Attr{Key: k, kind: kindInt, n: v} }

// Bool returns a boolean attribute.
func Bool(k string, v bool) Attr {
	a := Attr{Key: k, kind: kindBool}
	if v {
		a.n = 1
	}
	return a
}

// Float returns a floating-point attribute.
func Float(k string, v float64) Attr { return Attr{Key: k, kind: kindDouble, f: v} }

// spanData is a finished span, as exported.
type spanData struct {
	traceID      TraceID
	spanID       SpanID
	parent       SpanID // zero for a root
	remoteParent bool
	traceState   string
	name         string
	kind         Kind
	start, end   int64 // Unix nanoseconds
	attrs        []Attr
	status       int // statusUnset, statusOK, statusError
	statusMsg    string
}

// appendExportRequest appends the wire form of an
// ExportTraceServiceRequest with one ResourceSpans holding spans.
func appendExportRequest(b []byte, resource []Attr, scope, version string, spans []*spanData) []byte {
	var rs []byte
	var res []byte
	for _, a := range resource {
		res = appendKeyValue(res, resourceAttributes, a)
	}
	rs = appendMessage(rs, rsResource, res)

	var ss []byte
	var sc []byte
	sc = appendStr(sc, scopeName, scope)
	sc = appendStr(sc, scopeVersion, version)
	ss = appendMessage(ss, ssScope, sc)
	var sp []byte
	for _, s := range spans {
		sp = appendSpan(sp[:0], s)
		ss = appendMessage(ss, ssSpans, sp)
	}
	rs = appendMessage(rs, rsScopeSpans, ss)
	return appendMessage(b, exportResourceSpans, rs)
}

func appendSpan(b []byte, s *spanData) []byte {
	b = protowire.AppendTag(b, spanTraceID, protowire.BytesType)
	b = protowire.AppendBytes(b, s.traceID[:])
	b = protowire.AppendTag(b, spanSpanID, protowire.BytesType)
	b = protowire.AppendBytes(b, s.spanID[:])
	b = appendStr(b, spanTraceState, validUTF8(s.traceState))
	if s.parent.IsValid() {
		b = protowire.AppendTag(b, spanParentSpanID, protowire.BytesType)
		b = protowire.AppendBytes(b, s.parent[:])
	}
	b = appendStr(b, spanName, validUTF8(s.name))
	if s.kind != 0 {
		b = protowire.AppendTag(b, spanKind, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(s.kind))
	}
	b = protowire.AppendTag(b, spanStart, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(s.start))
	b = protowire.AppendTag(b, spanEnd, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(s.end))
	for _, a := range s.attrs {
		b = appendKeyValue(b, spanAttributes, a)
	}
	if s.status != statusUnset || s.statusMsg != "" {
		var st []byte
		st = appendStr(st, statusMessage, validUTF8(s.statusMsg))
		if s.status != statusUnset {
			st = protowire.AppendTag(st, statusCode, protowire.VarintType)
			st = protowire.AppendVarint(st, uint64(s.status))
		}
		b = appendMessage(b, spanStatus, st)
	}
	flags := uint32(0x01) // sampled (only sampled spans are exported)
	if s.parent.IsValid() {
		flags |= flagContextHasIsRemote
		if s.remoteParent {
			flags |= flagContextIsRemote
		}
	}
	b = protowire.AppendTag(b, spanFlags, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, flags)
}

func appendKeyValue(b []byte, num protowire.Number, a Attr) []byte {
	var v []byte
	switch a.kind {
	case kindString:
		v = protowire.AppendTag(v, anyString, protowire.BytesType)
		v = protowire.AppendString(v, validUTF8(a.s))
	case kindInt:
		v = protowire.AppendTag(v, anyInt, protowire.VarintType)
		v = protowire.AppendVarint(v, uint64(a.n))
	case kindBool:
		v = protowire.AppendTag(v, anyBool, protowire.VarintType)
		v = protowire.AppendVarint(v, uint64(a.n))
	case kindDouble:
		v = protowire.AppendTag(v, anyDouble, protowire.Fixed64Type)
		v = protowire.AppendFixed64(v, math.Float64bits(a.f))
	}
	var kv []byte
	kv = appendStr(kv, kvKey, validUTF8(a.Key))
	kv = appendMessage(kv, kvValue, v)
	return appendMessage(b, num, kv)
}

func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// appendStr appends a proto3 string field, omitting "".
func appendStr(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// validUTF8 replaces invalid UTF-8, which a protobuf string must not hold.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// grpcFrame wraps msg as one uncompressed length-prefixed gRPC message.
func grpcFrame(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}
