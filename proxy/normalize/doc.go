// Package normalize puts an inbound HTTP request into the one canonical
// form that routing, authorization and the upstream all see (issue #6).
//
// A Normalizer is compiled once from Options (New) and is immutable and
// safe for concurrent use; Request never blocks. Call it first, before the
// virtual-host lookup, route matching and any policy, and forward the
// request it rewrote: a policy that matched one spelling of a path while
// the app resolves another is the bypass this package exists to prevent.
//
// # Path
//
// The path is taken from the raw request target (r.RequestURI), never from
// the already-decoded r.URL.Path, and rewritten in this order:
//
//  1. Percent-encoding is checked: a '%' not followed by two hex digits is
//     rejected. %00 and any raw control byte are rejected. A raw '#'
//     (a fragment in the request target) is rejected.
//  2. Percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are
//     decoded (RFC 3986 §6.2.2.2); every other escape is kept, with
//     upper-case hex (§6.2.2.1). Double encoding therefore stays literal:
//     %252e is the three characters "%2e" to the app, never a dot.
//     Raw bytes outside pchar (space, '"', '<', '{', non-ASCII ...) are
//     percent-encoded. The decoded path must be valid UTF-8, which
//     rejects overlong forms such as %C0%AE ("." in broken decoders).
//  3. %2F, %5C and a raw '\' follow Options.SlashEncoding: rejected
//     (SlashReject, the default) or turned into '/' (SlashDecode). Either
//     way the canonical path never contains %2F or %5C, so no app can
//     read a separator that the router did not see.
//  4. Dot segments are removed (RFC 3986 §5.2.4), after the decoding of
//     step 2, so /x/%2e%2e/admin is /admin. ".." never climbs above "/".
//  5. Empty segments are merged ("//admin" is "/admin") unless
//     Options.KeepEmptySegments. A trailing slash is kept: "/admin/" and
//     "/admin" stay different paths, as they are to most apps; policies
//     should match path segments (prefix "/admin" matches both).
//  6. A dot segment carrying path parameters ("..;", ".;x", "..%3B") is
//     rejected: Tomcat and other servlet containers read "/x/..;/admin"
//     as "/admin". Other ';' parameters are kept, or rejected with
//     Options.PathParams = ParamsReject (recommended in front of servlet
//     apps, which strip "/admin;x" to "/admin").
//
// Case is not normalised: "/ADMIN" and "/admin" are different paths (RFC
// 3986 paths are case-sensitive). An app that folds case needs a policy
// that does too.
//
// The result is written to r.URL.RawPath (and r.URL.EscapedPath), its
// decoding to r.URL.Path, and r.RequestURI; the query is kept byte for
// byte (raw control bytes and '#' in it are rejected).
//
// # Host
//
// The authority (r.Host) is lower-cased, loses one trailing dot and the
// default port of the scheme (80 for http, 443 for https; the scheme is
// that of an absolute-form target, else https when the request came over
// TLS, else http), and is validated: DNS-style names of letters, digits,
// '-', '_' and '.', IPv4 literals, or bracketed IPv6 literals (written in
// their RFC 5952 form, no zones). Anything else is rejected.
//
// # Headers
//
// Header names must be tokens without '_' (a proxy that maps '_' to '-'
// would let "x_user" smuggle "x-user"); values must not contain NUL, CR,
// LF or other control bytes (tab is allowed). Client-supplied identity
// headers are removed: x-forwarded-client-cert and x-weft-* always, plus
// Options.StripHeaders (the headers JWT claims are forwarded in). What was
// removed is returned in Result.Stripped, so the forwarder can still read
// the X-Weft-Source-* labels that an authenticated peer proxy sent.
//
// Every value of a multi-valued header stays in r.Header; matchers must
// evaluate all of them (r.Header.Values), never only the first.
//
// # Client address
//
// Result.ClientIP is the TCP peer unless Options.TrustedHops is N > 0: then
// it is the Nth address from the right of all X-Forwarded-For values taken
// together (the address the outermost trusted proxy saw), or the TCP peer
// when the header has fewer than N entries or that entry is not an IP
// address. X-Forwarded-For itself is left as it is.
//
// # Errors
//
// Every rejection is an *Error with the HTTP status to answer (400) and a
// short fixed reason that never contains request bytes. The package-level
// Err* values are the only errors returned, so callers and tests can
// compare with errors.Is. A rejected request is left unmodified.
package normalize
