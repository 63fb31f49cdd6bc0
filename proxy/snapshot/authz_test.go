package snapshot

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/proxy/authz"
	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

func inboundListener(a *xdsresource.AuthzFilters) *xdsresource.Listener {
	return &xdsresource.Listener{Name: "inbound|15006", Address: "127.0.0.1:15006", FilterChains: []xdsresource.FilterChain{{
		HTTP: &xdsresource.HTTPConnectionManager{StatPrefix: "in", Routes: &xdsresource.RouteConfiguration{Name: "inbound|8080"},
			HTTPFilters: []string{xdsresource.FilterRouter}, Authz: a},
	}}}
}

func TestCompileAuthz(t *testing.T) {
	extAuthz := &xdsresource.AuthzFilters{ExtAuthz: []xdsresource.ExtAuthz{{Cluster: "weft-authz|opa"}}}
	tests := []struct {
		name    string
		l       *xdsresource.Listener
		denied  string
		opts    Options
		wantErr bool
		allowed bool
	}{
		{name: "no filters: no engine", l: inboundListener(nil), allowed: true},
		{name: "denied by the proxy", l: inboundListener(nil), denied: "listener update rejected", wantErr: true},
		{name: "ext_authz without a client", l: inboundListener(extAuthz), wantErr: true},
		{name: "ext_authz with a client", l: inboundListener(extAuthz), allowed: true, opts: Options{
			ExtAuthz: func(context.Context, string, *authz.Request) (authz.Decision, error) {
				return authz.Decision{Allowed: true}, nil
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &Resources{Listeners: map[string]*xdsresource.Listener{tt.l.Name: tt.l}}
			if tt.denied != "" {
				res.Denied = map[string]string{tt.l.Name: tt.denied}
			}
			s, err := CompileWith(res, balancer.NewPool(), tt.opts)
			var ae *AuthzError
			if tt.wantErr != errors.As(err, &ae) || (err != nil && !IsAuthzOnly(err)) {
				t.Fatalf("err = %v, want an AuthzError: %v", err, tt.wantErr)
			}
			if s == nil {
				t.Fatal("no snapshot: a listener's authorization failure must still give a usable snapshot")
			}
			l := s.Listeners[tt.l.Name]
			if l.Normalizer == nil {
				t.Fatal("an HTTP listener without a normaliser")
			}
			req := &authz.Request{Method: http.MethodGet, Host: "catalog.shop", Path: "/", Header: http.Header{}}
			if got := l.Authz.Check(context.Background(), req).Allowed; got != tt.allowed {
				t.Fatalf("allowed = %v, want %v", got, tt.allowed)
			}
		})
	}
}
