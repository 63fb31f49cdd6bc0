package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"time"

	"github.com/weftmesh/weft/proxy/authz"
	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/snapshot"
)

// This file is the proxy's side of authorization: the ext_authz client
// the engines call, and switching listeners whose authorization config
// could not be used to deny-all (docs/xds.md: a listener whose
// authorization filters the proxy cannot decode is NACKed and denies
// every request until a usable config arrives; it never falls back to
// allow).

// authzTypeMarks are substrings of the type URLs of the authorization
// filters' configs: a listener whose bytes hold one carries authorization.
var authzTypeMarks = [...][]byte{
	[]byte(".rbac.v3.RBAC"),
	[]byte(".jwt_authn.v3.JwtAuthentication"),
	[]byte(".ext_authz.v3.ExtAuthz"),
}

// carriesAuthz reports whether a serialized listener has authorization
// filters (as far as its bytes tell: enough to fail closed).
func carriesAuthz(b []byte) bool {
	for _, m := range authzTypeMarks {
		if bytes.Contains(b, m) {
			return true
		}
	}
	return false
}

// denyListeners switches listeners of the running config to deny-all
// (names → why), for a listener update that is rejected as a whole: the
// names stay denied until a listener update decodes them.
func (p *Proxy) denyListeners(denied map[string]string) {
	next := p.res
	next.Denied = maps.Clone(p.res.Denied)
	if next.Denied == nil {
		next.Denied = map[string]string{}
	}
	maps.Copy(next.Denied, denied)
	snap, err := snapshot.CompileWith(&next, p.pool, p.compileOptions())
	if err != nil && !snapshot.IsAuthzOnly(err) {
		p.log.Error("cannot switch listeners to deny-all", "error", err)
		return
	}
	p.current.Store(snap)
	p.fwd.Retain(snap)
	p.res = next
	for name, why := range denied {
		p.log.Warn("listener denies every request", "listener", name, "reason", why)
	}
}

func (p *Proxy) compileOptions() snapshot.Options {
	return snapshot.Options{ExtAuthz: p.extAuthz}
}

// extAuthz is authz.Options.ExtAuthz: one Check to the authorizer of an
// ext_authz cluster (STATIC cluster weft-authz|NAME of the current
// config), over plaintext HTTP/2.
func (p *Proxy) extAuthz(ctx context.Context, cluster string, req *authz.Request) (authz.Decision, error) {
	c := p.authzClient
	if c == nil {
		return authz.Decision{}, errors.New("proxy: no ext_authz client")
	}
	return c(ctx, cluster, req)
}

// dialAuthz connects to an endpoint of an ext_authz cluster, picked from
// the current snapshot.
func (p *Proxy) dialAuthz(ctx context.Context, cluster string) (net.Conn, error) {
	snap := p.current.Load()
	if snap == nil {
		return nil, fmt.Errorf("proxy: ext_authz cluster %q: no configuration", cluster)
	}
	c := snap.Clusters[cluster]
	if c == nil {
		return nil, fmt.Errorf("proxy: ext_authz cluster %q does not exist", cluster)
	}
	ep := c.Picker.PickFor(balancer.Request{})
	if ep == nil {
		return nil, fmt.Errorf("proxy: ext_authz cluster %q: no healthy endpoint", cluster)
	}
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", ep.Address)
	if err != nil {
		return nil, fmt.Errorf("proxy: ext_authz cluster %q: %w", cluster, err)
	}
	return conn, nil
}
