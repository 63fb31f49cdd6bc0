package normalize

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SlashEncoding says what becomes of %2F, %5C and a raw '\' in a path.
type SlashEncoding uint8

const (
	// SlashReject answers 400. The default: an encoded separator is almost
	// always an attack on a router that does not decode it.
	SlashReject SlashEncoding = iota
	// SlashDecode turns them into '/', which then separates segments (and
	// is merged, removed with dot segments ...) like any other '/'.
	SlashDecode
)

// PathParams says what becomes of ';' path parameters ("/a;jsessionid=1").
type PathParams uint8

const (
	// ParamsKeep forwards them as they are (the default). Dot segments
	// with parameters ("..;") are rejected whatever the setting.
	ParamsKeep PathParams = iota
	// ParamsReject answers 400 to any raw ';' in the path.
	ParamsReject
)

// MaxTrustedHops bounds Options.TrustedHops.
const MaxTrustedHops = 16

// Options configure a Normalizer. The zero value is the secure default:
// encoded slashes rejected, slashes merged, parameters kept, the TCP peer
// as client address, only the built-in identity headers stripped.
type Options struct {
	// SlashEncoding: SlashReject (default) or SlashDecode.
	SlashEncoding SlashEncoding
	// KeepEmptySegments turns off the merging of slashes ("//a" stays
	// "//a"). Merging is the default.
	KeepEmptySegments bool
	// PathParams: ParamsKeep (default) or ParamsReject.
	PathParams PathParams
	// TrustedHops is the number of proxies in front of this one whose
	// X-Forwarded-For entries are trusted; 0 (default) ignores the header
	// and uses the TCP peer.
	TrustedHops int
	// StripHeaders are removed from every request in addition to the
	// built-in identity headers (x-forwarded-client-cert, x-weft-*). A name
	// ending in '*' is a prefix. Case-insensitive. Put the headers that JWT
	// claims are forwarded in here.
	StripHeaders []string
}

// IdentityHeaders are always stripped from requests: a client must never
// be able to claim an identity the proxy vouches for.
var IdentityHeaders = [...]string{"x-forwarded-client-cert", "x-weft-*"}

// Error is a rejected request: the HTTP status to answer and a short,
// fixed reason (never request bytes).
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return "normalize: " + e.Reason }

func reject(reason string) *Error { return &Error{Status: http.StatusBadRequest, Reason: reason} }

// The errors Request, Path and Host return.
var (
	ErrTarget           = reject("unsupported request target")
	ErrFragment         = reject("fragment in request target")
	ErrNUL              = reject("NUL in request target")
	ErrControl          = reject("control character in request target")
	ErrBadEscape        = reject("invalid percent-encoding in path")
	ErrEncodedSlash     = reject("encoded slash or backslash in path")
	ErrBadUTF8          = reject("path is not valid UTF-8")
	ErrDotParams        = reject("dot segment with path parameters")
	ErrPathParams       = reject("path parameters not allowed")
	ErrNoHost           = reject("missing host")
	ErrBadHost          = reject("invalid host")
	ErrHeaderName       = reject("invalid header name")
	ErrHeaderUnderscore = reject("header name with underscore")
	ErrHeaderValue      = reject("control character in header value")
)

// Result is what Request made of a request.
type Result struct {
	// Path is the canonical escaped path, now also r.URL.RawPath.
	Path string
	// Host is the canonical authority, now also r.Host.
	Host string
	// ClientIP is the client address per Options.TrustedHops (unmapped
	// from IPv4-in-IPv6); the zero Addr when even the peer is unknown.
	ClientIP netip.Addr
	// Stripped holds the identity headers removed from the request (nil
	// when none were present).
	Stripped http.Header
}

// Normalizer is a compiled Options. It is immutable and safe for
// concurrent use.
type Normalizer struct {
	slash     SlashEncoding
	keepEmpty bool
	params    PathParams
	hops      int
	exact     []string // lower case
	prefixes  []string // lower case
}

// New compiles o.
func New(o Options) (*Normalizer, error) {
	if o.SlashEncoding > SlashDecode {
		return nil, fmt.Errorf("normalize: unknown slash encoding %d", o.SlashEncoding)
	}
	if o.PathParams > ParamsReject {
		return nil, fmt.Errorf("normalize: unknown path parameters setting %d", o.PathParams)
	}
	if o.TrustedHops < 0 || o.TrustedHops > MaxTrustedHops {
		return nil, fmt.Errorf("normalize: trusted hops %d out of range 0-%d", o.TrustedHops, MaxTrustedHops)
	}
	n := &Normalizer{slash: o.SlashEncoding, keepEmpty: o.KeepEmptySegments, params: o.PathParams, hops: o.TrustedHops}
	for _, h := range append(IdentityHeaders[:len(IdentityHeaders):len(IdentityHeaders)], o.StripHeaders...) {
		name, prefix := strings.CutSuffix(strings.ToLower(h), "*")
		if (name == "" && !prefix) || !isToken(name) {
			return nil, fmt.Errorf("normalize: invalid header name %q to strip", h)
		}
		if prefix {
			n.prefixes = append(n.prefixes, name)
		} else {
			n.exact = append(n.exact, name)
		}
	}
	return n, nil
}

// Request checks r and rewrites it into its canonical form (see the
// package documentation). On error r is left unmodified and the caller
// answers err.(*Error).Status without forwarding anything.
func (n *Normalizer) Request(r *http.Request) (*Result, error) {
	if r.Method == http.MethodConnect {
		return nil, ErrTarget
	}
	raw := r.RequestURI
	if raw == "" && r.URL != nil {
		raw = r.URL.RequestURI()
	}
	if strings.IndexByte(raw, '#') >= 0 {
		return nil, ErrFragment
	}
	rawPath, query, hasQuery := strings.Cut(raw, "?")
	if err := checkQuery(query); err != nil {
		return nil, err
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if !strings.HasPrefix(rawPath, "/") {
		// Absolute form (a request to a proxy): scheme://authority[/path].
		s, rest, ok := strings.Cut(rawPath, "://")
		s = strings.ToLower(s)
		if !ok || (s != "http" && s != "https") {
			return nil, ErrTarget
		}
		scheme = s
		authority := rest
		rawPath = "/"
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			authority, rawPath = rest[:i], rest[i:]
		}
		if strings.IndexByte(authority, '@') >= 0 {
			return nil, ErrBadHost
		}
	}
	path, err := n.Path(rawPath)
	if err != nil {
		return nil, err
	}
	defaultPort := "80"
	if scheme == "https" {
		defaultPort = "443"
	}
	host, err := Host(r.Host, defaultPort)
	if err != nil {
		return nil, err
	}
	var stripped http.Header
	for name, values := range r.Header {
		if !isToken(name) {
			return nil, ErrHeaderName
		}
		if strings.IndexByte(name, '_') >= 0 {
			return nil, ErrHeaderUnderscore
		}
		for _, v := range values {
			if !validValue(v) {
				return nil, ErrHeaderValue
			}
		}
		if n.strip(name) {
			if stripped == nil {
				stripped = make(http.Header)
			}
			stripped[name] = values
		}
	}
	decoded, err := url.PathUnescape(path)
	if err != nil { // cannot happen: Path writes only valid escapes
		return nil, ErrBadEscape
	}

	// Every check passed: commit.
	for name := range stripped {
		delete(r.Header, name)
	}
	r.URL.Path, r.URL.RawPath = decoded, path
	r.URL.Fragment, r.URL.RawFragment = "", ""
	r.URL.RawQuery = query
	r.URL.ForceQuery = hasQuery && query == ""
	r.Host = host
	if r.URL.Host != "" {
		r.URL.Host = host
	}
	r.RequestURI = path
	if hasQuery {
		r.RequestURI += "?" + query
	}
	return &Result{Path: path, Host: host, ClientIP: n.clientIP(r), Stripped: stripped}, nil
}

func (n *Normalizer) strip(name string) bool {
	for _, e := range n.exact {
		if strings.EqualFold(name, e) {
			return true
		}
	}
	for _, p := range n.prefixes {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	return false
}

// Path returns the canonical form of an escaped absolute path (no query),
// as Request does. It also serves to canonicalise the paths that policies
// and routes are configured with, so that both sides compare alike.
func (n *Normalizer) Path(p string) (string, error) {
	if p == "" || p[0] != '/' {
		return "", ErrTarget
	}
	// Pass 1: escapes, raw bytes, separators. b is the canonical escaped
	// form, dec its decoding (for the UTF-8 check).
	b := make([]byte, 0, len(p)+8)
	dec := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", ErrBadEscape
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch {
			case v == 0:
				return "", ErrNUL
			case v == '/' || v == '\\':
				if n.slash == SlashReject {
					return "", ErrEncodedSlash
				}
				b = append(b, '/')
				v = '/'
			case isUnreserved(v):
				b = append(b, v)
			default:
				b = append(b, '%', upperHex[v>>4], upperHex[v&15])
			}
			dec = append(dec, v)
		case c == 0:
			return "", ErrNUL
		case c < 0x20 || c == 0x7f:
			return "", ErrControl
		case c == '#':
			return "", ErrFragment
		case c == '\\':
			if n.slash == SlashReject {
				return "", ErrEncodedSlash
			}
			b = append(b, '/')
			dec = append(dec, '/')
		case c == '/' || isPchar(c):
			b = append(b, c)
			dec = append(dec, c)
		default:
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
			dec = append(dec, c)
		}
	}
	if !utf8.Valid(dec) {
		return "", ErrBadUTF8
	}

	// Pass 2: segments. b starts with '/'.
	segs := strings.Split(string(b[1:]), "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case ".", "..":
			if seg == ".." && len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "") // "/a/.." is "/", "/a/." is "/a/"
			}
			continue
		case "":
			if !last && !n.keepEmpty {
				continue
			}
		default:
			if err := n.checkParams(seg); err != nil {
				return "", err
			}
		}
		out = append(out, seg)
	}
	return "/" + strings.Join(out, "/"), nil
}

// checkParams refuses dot segments with parameters, and any parameter
// with ParamsReject. seg is canonical (upper-case escapes).
func (n *Normalizer) checkParams(seg string) error {
	for _, dot := range [...]string{"..;", ".;", "..%3B", ".%3B"} {
		if strings.HasPrefix(seg, dot) {
			return ErrDotParams
		}
	}
	if n.params == ParamsReject && strings.IndexByte(seg, ';') >= 0 {
		return ErrPathParams
	}
	return nil
}

func checkQuery(q string) error {
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == 0:
			return ErrNUL
		case c < 0x20 || c == 0x7f:
			return ErrControl
		}
	}
	return nil
}

// Host returns the canonical form of an authority (host[:port]): lower
// case, no trailing dot, no port when it is defaultPort ("80", "443", or
// "" to keep every port), IPv6 in brackets and RFC 5952 form.
func Host(h, defaultPort string) (string, error) {
	if h == "" {
		return "", ErrNoHost
	}
	if len(h) > 300 {
		return "", ErrBadHost
	}
	var name, port string
	hasPort := false
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", ErrBadHost
		}
		addr, err := netip.ParseAddr(h[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", ErrBadHost
		}
		name = "[" + addr.String() + "]"
		if rest := h[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", ErrBadHost
			}
			port, hasPort = rest[1:], true
		}
	} else {
		name = h
		if i := strings.IndexByte(h, ':'); i >= 0 {
			name, port, hasPort = h[:i], h[i+1:], true
		}
		var ok bool
		if name, ok = hostName(name); !ok {
			return "", ErrBadHost
		}
	}
	if hasPort && port != "" { // "host:" is "host" (RFC 3986 §6.2.3)
		if len(port) > 5 {
			return "", ErrBadHost
		}
		v := 0
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return "", ErrBadHost
			}
			v = v*10 + int(port[i]-'0')
		}
		if v == 0 || v > 65535 {
			return "", ErrBadHost
		}
		if p := strconv.Itoa(v); p != defaultPort {
			return name + ":" + p, nil
		}
	}
	return name, nil
}

// hostName validates and lower-cases a registered name or IPv4 literal.
func hostName(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	b := []byte(s)
	label := 0
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if label == 0 {
				return "", false
			}
			label = 0
			continue
		default:
			return "", false
		}
		if label++; label > 63 {
			return "", false
		}
	}
	if label == 0 {
		return "", false
	}
	s = string(b)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), true
	}
	return s, true
}

// clientIP picks the client address per the trusted hop count.
func (n *Normalizer) clientIP(r *http.Request) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if n.hops == 0 {
		return peer
	}
	var entries []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for e := range strings.SplitSeq(v, ",") {
			entries = append(entries, strings.TrimSpace(e))
		}
	}
	if len(entries) < n.hops {
		return peer
	}
	if a := parseAddr(entries[len(entries)-n.hops]); a.IsValid() {
		return a
	}
	return peer
}

// parseAddr reads "ip", "ip:port", "[ipv6]" or "[ipv6]:port".
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isUnreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 §2.3).
func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isPchar: unreserved / sub-delims / ":" / "@" (RFC 3986 §3.3), without
// pct-encoded.
func isPchar(c byte) bool {
	if isUnreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

// isToken: an RFC 9110 token (header field name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			continue
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '^', '`', '|':
			continue
		}
		return false
	}
	return true
}

// validValue: no control bytes but tab.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
