package authz

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzCheck decides random requests against a fixed policy set: Check
// never panics, and a request that matches a DENY policy is never
// allowed.
func FuzzCheck(f *testing.F) {
	f.Add("GET", "svc.ns", "/api/x", "", "x-evil", "1", "0", fooSA, []byte{10, 0, 0, 1}, uint32(8080))
	f.Add("GET", "svc.ns", "/admin", "a=1", "x-a", "b", "", fooSA, []byte{192, 0, 2, 7}, uint32(8080))
	f.Add("DELETE", "SVC.ns", "/open", "", "x-evil", "0", "1", "", []byte{}, uint32(9090))
	f.Add("HEAD", "", "/jwt/a", "", "", "", "", "spiffe://cluster.local/ns/foo/sa/a/b", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 192, 0, 2, 1}, uint32(0))
	e, err := Compile(meshPolicies(), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, host, path, query, hname, v1, v2, peer string, ip []byte, port uint32) {
		r := &Request{Method: method, Host: host, Path: path, Query: query, Header: http.Header{}, PeerID: peer, DestPort: port}
		if hname != "" {
			r.Header[http.CanonicalHeaderKey(hname)] = []string{v1, v2}
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			r.DirectIP, r.RemoteIP = a, a
		}
		if strings.HasPrefix(peer, "{") {
			r.Claims = map[string]map[string]any{"p": {"iss": "https://issuer", "groups": []any{v1, 1.0, true, nil}}}
		}
		d := e.Check(context.Background(), r)
		denyMatch := strings.HasPrefix(path, "/admin") ||
			(strings.EqualFold(hname, "x-evil") && (v1 == "1" || v2 == "1")) ||
			(r.RemoteIP.IsValid() && netip.MustParsePrefix("192.0.2.0/24").Contains(r.RemoteIP.Unmap()))
		for _, s := range e.steps {
			if s.rules != nil && s.rules.action == 1 {
				if _, ok := s.rules.first(r); ok {
					denyMatch = true
				}
			}
		}
		if denyMatch && d.Allowed {
			t.Fatalf("request matching a DENY policy allowed: %+v → %+v", r, d)
		}
		if !d.Allowed && d.Status != http.StatusForbidden {
			t.Fatalf("denial with status %d", d.Status)
		}
	})
}
