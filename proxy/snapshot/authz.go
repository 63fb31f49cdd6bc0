package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/weftmesh/weft/proxy/authz"
	"github.com/weftmesh/weft/proxy/normalize"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Options are what compiling needs from the proxy besides the resources.
type Options struct {
	// ExtAuthz sends a Check to an ext_authz cluster (authz.Options). Nil:
	// a listener with an ext_authz filter cannot be compiled, and denies.
	ExtAuthz func(ctx context.Context, cluster string, req *authz.Request) (authz.Decision, error)
}

// AuthzError is what Compile returns when the authorization config of
// some listeners could not be compiled, together with a usable snapshot in
// which those listeners deny every request (fail closed): the proxy
// installs that snapshot and rejects the update.
type AuthzError struct {
	// Listeners maps each listener that denies everything to why.
	Listeners map[string]error
}

func (e *AuthzError) Error() string {
	names := make([]string, 0, len(e.Listeners))
	for name := range e.Listeners {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("listener %q: authorization: %v (denying every request)", name, e.Listeners[name])
	}
	return strings.Join(parts, "; ")
}

// IsAuthzOnly reports whether err is an *AuthzError alone: the snapshot
// returned with it is usable.
func IsAuthzOnly(err error) bool {
	var ae *AuthzError
	return errors.As(err, &ae)
}

// compileAuthz compiles the listener's authorization: the first chain's
// HCM filters (every chain does the same), or the TCP chain's network
// RBAC. denied, when not empty, is why the listener must deny everything
// whatever its config (Resources.Denied).
func compileAuthz(cl *Listener, l *xdsresource.Listener, denied string, opts Options) error {
	if denied != "" {
		cl.Authz = authz.DenyAll(denied)
		return errors.New(denied)
	}
	var (
		e   *authz.Engine
		err error
	)
	for _, fc := range l.FilterChains {
		switch {
		case fc.HTTP != nil && fc.HTTP.Authz != nil:
			for _, x := range fc.HTTP.Authz.ExtAuthz {
				if x.IncludePeerCertificate {
					cl.AuthzPeerCert = true
				}
			}
			if len(fc.HTTP.Authz.ExtAuthz) > 0 && opts.ExtAuthz == nil {
				err = errors.New("ext_authz filter without an ext_authz client")
			} else {
				e, err = authz.Compile(fc.HTTP.Authz, authz.Options{ExtAuthz: opts.ExtAuthz})
			}
		case fc.TCP != nil && fc.TCP.RBAC != nil:
			e, err = authz.CompileNetwork(fc.TCP.RBAC)
		default:
			continue
		}
		break // chains are alike: the first with a config decides
	}
	if err != nil {
		cl.Authz = authz.DenyAll("authorization config not usable")
		return err
	}
	cl.Authz = e
	return nil
}

// compileNormalizer builds the listener's request normaliser from the
// first HTTP chain's HCM settings (nil for a TCP listener).
func compileNormalizer(l *xdsresource.Listener) (*normalize.Normalizer, error) {
	for _, fc := range l.FilterChains {
		if fc.HTTP == nil {
			continue
		}
		n := fc.HTTP.Normalization
		o := normalize.Options{TrustedHops: int(n.TrustedHops)}
		if n.EscapedSlashes == xdsresource.SlashDecode {
			o.SlashEncoding = normalize.SlashDecode
		}
		if a := fc.HTTP.Authz; a != nil && a.JWT != nil {
			// Claims are forwarded in these headers: a client's own copies
			// never reach the app.
			for _, p := range a.JWT.Providers {
				for _, c := range p.ClaimToHeaders {
					o.StripHeaders = append(o.StripHeaders, c.Header)
				}
			}
		}
		return normalize.New(o)
	}
	return nil, nil
}
