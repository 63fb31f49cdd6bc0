package xdsresource

import "fmt"

// SlashAction is HttpConnectionManager.PathWithEscapedSlashesAction: what
// becomes of %2F and %5C in a request path.
type SlashAction int

const (
	// SlashDefault is IMPLEMENTATION_SPECIFIC_DEFAULT (unset): Weft's
	// default, reject.
	SlashDefault SlashAction = iota
	// SlashKeep is KEEP_UNCHANGED: refused (the proxy never forwards an
	// encoded separator its router did not see).
	SlashKeep
	// SlashReject is REJECT_REQUEST: 400.
	SlashReject
	// SlashRedirect is UNESCAPE_AND_REDIRECT: refused (the proxy does not
	// redirect; use UNESCAPE_AND_FORWARD).
	SlashRedirect
	// SlashDecode is UNESCAPE_AND_FORWARD: decoded into '/' before
	// routing.
	SlashDecode
)

// Normalization is how an HCM's requests are put into canonical form
// (proxy/normalize), from the standard HttpConnectionManager fields
// normalize_path (30), merge_slashes (33),
// path_with_escaped_slashes_action (45) and xff_num_trusted_hops (19).
// The zero value is Weft's default: normalised, slashes merged, encoded
// slashes rejected, no trusted X-Forwarded-For hop. Weft always
// normalises and merges slashes: normalize_path false is refused, and
// merge_slashes false cannot be told from unset in proto3, so it means
// the default. Comparable.
type Normalization struct {
	EscapedSlashes SlashAction
	TrustedHops    uint32
}

// MaxTrustedHops bounds xff_num_trusted_hops.
const MaxTrustedHops = 16

func (n *Normalization) decodeField(f field) (bool, error) {
	var err error
	switch f.num {
	case 19:
		n.TrustedHops, err = f.uint32()
		if err == nil && n.TrustedHops > MaxTrustedHops {
			err = fmt.Errorf("%d exceeds %d", n.TrustedHops, MaxTrustedHops)
		}
		return true, at("xff_num_trusted_hops", err)
	case 30:
		var b []byte
		if b, err = f.message(); err == nil {
			var on bool
			if on, err = decodeBoolValue(b); err == nil && !on {
				err = fmt.Errorf("false: %w (the proxy always normalises paths)", errNotSupported)
			}
		}
		return true, at("normalize_path", err)
	case 33:
		_, err = f.bool()
		return true, at("merge_slashes", err)
	case 45:
		var v int32
		if v, err = f.int32(); err == nil {
			switch SlashAction(v) {
			case SlashDefault, SlashReject, SlashDecode:
				n.EscapedSlashes = SlashAction(v)
			case SlashKeep:
				err = fmt.Errorf("KEEP_UNCHANGED: %w (encoded slashes are rejected or decoded)", errNotSupported)
			case SlashRedirect:
				err = fmt.Errorf("UNESCAPE_AND_REDIRECT: %w (use UNESCAPE_AND_FORWARD)", errNotSupported)
			default:
				err = fmt.Errorf("unknown action %d", v)
			}
		}
		return true, at("path_with_escaped_slashes_action", err)
	}
	return false, nil
}
