package tracing

import (
	"encoding/hex"
	"net/http"
	"strings"
)

// TraceID and SpanID are W3C / B3 identifiers; all zeros is invalid.
type (
	TraceID [16]byte
	SpanID  [8]byte
)

func (t TraceID) String() string { return hex.EncodeToString(t[:]) }
func (s SpanID) String() string  { return hex.EncodeToString(s[:]) }

// IsValid reports whether t is not all zeros.
func (t TraceID) IsValid() bool { return t != TraceID{} }

// IsValid reports whether s is not all zeros.
func (s SpanID) IsValid() bool { return s != SpanID{} }

// Format is the header format a context arrived in.
type Format uint8

const (
	FormatNone     Format = iota
	FormatW3C             // traceparent / tracestate
	FormatB3Single        // b3
	FormatB3Multi         // X-B3-TraceId, X-B3-SpanId, X-B3-Sampled, X-B3-Flags
)

// Decision is the sampling decision carried by a context.
type Decision uint8

const (
	Defer   Decision = iota // no decision: the receiver decides
	Sampled                 // record (B3 debug counts as sampled)
	NotSampled
)

// SpanContext is what travels between services: the trace, the sender's
// span (the receiver's parent) and the sampling decision.
type SpanContext struct {
	TraceID    TraceID
	SpanID     SpanID
	Decision   Decision
	TraceState string // W3C tracestate, passed through
	Format     Format
	// b3 records the B3 forms present beside a W3C context that won
	// (b3Single, b3Multi), so Inject keeps them in sync: an app that
	// forwards both kinds of headers gets both, with the same parent.
	b3 uint8
}

const (
	b3Single uint8 = 1 << iota
	b3Multi
)

// IsValid reports whether both ids are set.
func (c SpanContext) IsValid() bool { return c.TraceID.IsValid() && c.SpanID.IsValid() }

// Header names.
const (
	hTraceparent = "Traceparent"
	hTracestate  = "Tracestate"
	hB3          = "B3"
	hB3TraceID   = "X-B3-Traceid"
	hB3SpanID    = "X-B3-Spanid"
	hB3Parent    = "X-B3-Parentspanid"
	hB3Sampled   = "X-B3-Sampled"
	hB3Flags     = "X-B3-Flags"
)

// Extract reads the incoming context: W3C traceparent first, then the
// single b3 header, then the X-B3-* headers. A malformed header is
// ignored (as if absent), per the W3C spec. A context that carries only a
// sampling decision (b3: 0, or X-B3-Sampled alone) is returned with zero
// ids and that decision.
func Extract(h http.Header) SpanContext {
	if v := h.Get(hTraceparent); v != "" {
		if sc, ok := parseTraceparent(v); ok {
			sc.TraceState = strings.Join(h.Values(hTracestate), ",")
			if len(sc.TraceState) > 512 {
				sc.TraceState = "" // the spec allows dropping oversize state
			}
			if len(h[hB3]) > 0 {
				sc.b3 |= b3Single
			}
			if len(h[hB3TraceID]) > 0 {
				sc.b3 |= b3Multi
			}
			return sc
		}
	}
	if v := h.Get(hB3); v != "" {
		if sc, ok := parseB3Single(v); ok {
			return sc
		}
	}
	if sc, ok := parseB3Multi(h); ok {
		return sc
	}
	return SpanContext{}
}

// parseTraceparent parses version-traceid-parentid-flags (version 00, or a
// later version read as 00, per the spec's forward compatibility rules).
func parseTraceparent(v string) (SpanContext, bool) {
	v = strings.TrimSpace(v)
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return SpanContext{}, false
	}
	ver, ok := hexByte(v[0:2])
	if !ok || ver == 0xff || (ver == 0 && len(v) != 55) || (ver > 0 && len(v) > 55 && v[55] != '-') {
		return SpanContext{}, false
	}
	var sc SpanContext
	if !decodeLowerHex(sc.TraceID[:], v[3:35]) || !decodeLowerHex(sc.SpanID[:], v[36:52]) || !sc.IsValid() {
		return SpanContext{}, false
	}
	flags, ok := hexByte(v[53:55])
	if !ok {
		return SpanContext{}, false
	}
	sc.Decision = NotSampled
	if flags&1 == 1 {
		sc.Decision = Sampled
	}
	sc.Format = FormatW3C
	return sc, true
}

// parseB3Single parses b3: {TraceId}-{SpanId}[-{Sampling}[-{ParentSpanId}]]
// or a lone sampling state (0, 1, d).
func parseB3Single(v string) (SpanContext, bool) {
	v = strings.TrimSpace(v)
	switch v {
	case "0":
		return SpanContext{Decision: NotSampled, Format: FormatB3Single}, true
	case "1", "d":
		return SpanContext{Decision: Sampled, Format: FormatB3Single}, true
	}
	parts := strings.Split(v, "-")
	if len(parts) < 2 || len(parts) > 4 {
		return SpanContext{}, false
	}
	var sc SpanContext
	if !parseB3TraceID(&sc.TraceID, parts[0]) || len(parts[1]) != 16 || !decodeLowerHex(sc.SpanID[:], parts[1]) || !sc.IsValid() {
		return SpanContext{}, false
	}
	if len(parts) >= 3 {
		switch parts[2] {
		case "1", "d":
			sc.Decision = Sampled
		case "0":
			sc.Decision = NotSampled
		default:
			return SpanContext{}, false
		}
	}
	if len(parts) == 4 {
		var p SpanID
		if len(parts[3]) != 16 || !decodeLowerHex(p[:], parts[3]) {
			return SpanContext{}, false
		}
	}
	sc.Format = FormatB3Single
	return sc, true
}

func parseB3Multi(h http.Header) (SpanContext, bool) {
	var sc SpanContext
	sampled, flags := h.Get(hB3Sampled), h.Get(hB3Flags)
	switch {
	case flags == "1":
		sc.Decision = Sampled
	case sampled == "1" || strings.EqualFold(sampled, "true"):
		sc.Decision = Sampled
	case sampled == "0" || strings.EqualFold(sampled, "false"):
		sc.Decision = NotSampled
	}
	tid, sid := h.Get(hB3TraceID), h.Get(hB3SpanID)
	if tid == "" && sid == "" {
		if sc.Decision == Defer {
			return SpanContext{}, false
		}
		sc.Format = FormatB3Multi
		return sc, true
	}
	if !parseB3TraceID(&sc.TraceID, tid) || len(sid) != 16 || !decodeLowerHex(sc.SpanID[:], sid) || !sc.IsValid() {
		return SpanContext{}, false
	}
	sc.Format = FormatB3Multi
	return sc, true
}

// parseB3TraceID accepts 16 or 32 hex digits (a 64-bit id is left-padded).
func parseB3TraceID(t *TraceID, s string) bool {
	switch len(s) {
	case 32:
		return decodeLowerHex(t[:], s)
	case 16:
		*t = TraceID{}
		return decodeLowerHex(t[8:], s)
	}
	return false
}

// Inject writes sc into h for the next hop, replacing any trace headers:
// always traceparent (and tracestate when set); also the B3 forms the
// context arrived with (b3 or X-B3-*, alone or beside traceparent), or
// both B3 forms if alsoB3 is set and it arrived in neither.
func Inject(h http.Header, sc SpanContext, alsoB3 bool) {
	for _, k := range []string{hTraceparent, hTracestate, hB3, hB3TraceID, hB3SpanID, hB3Parent, hB3Sampled, hB3Flags} {
		delete(h, k)
	}
	if !sc.IsValid() {
		return
	}
	sampled := sc.Decision == Sampled
	var tp [55]byte
	copy(tp[:], "00-")
	hex.Encode(tp[3:35], sc.TraceID[:])
	tp[35] = '-'
	hex.Encode(tp[36:52], sc.SpanID[:])
	tp[52], tp[53], tp[54] = '-', '0', '0'
	if sampled {
		tp[54] = '1'
	}
	h[hTraceparent] = []string{string(tp[:])}
	if sc.TraceState != "" {
		h[hTracestate] = []string{sc.TraceState}
	}
	flag := "0"
	if sampled {
		flag = "1"
	}
	single := sc.Format == FormatB3Single || sc.b3&b3Single != 0 || (alsoB3 && sc.Format != FormatB3Multi && sc.b3 == 0)
	multi := sc.Format == FormatB3Multi || sc.b3&b3Multi != 0 || (alsoB3 && sc.Format != FormatB3Single && sc.b3 == 0)
	if single {
		h[hB3] = []string{sc.TraceID.String() + "-" + sc.SpanID.String() + "-" + flag}
	}
	if multi {
		h[hB3TraceID] = []string{sc.TraceID.String()}
		h[hB3SpanID] = []string{sc.SpanID.String()}
		h[hB3Sampled] = []string{flag}
	}
}

func hexByte(s string) (byte, bool) {
	var b [1]byte
	if !decodeLowerHex(b[:], s) {
		return 0, false
	}
	return b[0], true
}

// decodeLowerHex decodes exactly len(dst)*2 lowercase hex digits (W3C
// requires lowercase; B3 ids are lowercase too).
func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := nibble(s[2*i])
		lo, ok2 := nibble(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func nibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
