package authz

import (
	"context"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	x "github.com/weftmesh/weft/proxy/xdsresource"
)

// Helpers building the rules the control plane generates (Istio's
// translation, docs/xds.md).

func exact(v string) x.StringMatch  { return x.StringMatch{Kind: x.MatchExact, Value: v} }
func prefix(v string) x.StringMatch { return x.StringMatch{Kind: x.MatchPrefix, Value: v} }
func suffix(v string) x.StringMatch { return x.StringMatch{Kind: x.MatchSuffix, Value: v} }
func regex(v string) x.StringMatch {
	return x.StringMatch{Kind: x.MatchRegex, Regex: regexp.MustCompile("^(?:" + v + ")$")}
}

func anyPerm() x.Permission { return x.Permission{Kind: x.PermAny} }
func anyPrin() x.Principal  { return x.Principal{Kind: x.PrinAny} }
func method(m string) x.Permission {
	return x.Permission{Kind: x.PermHeader, Header: x.HeaderMatcher{Name: ":method", String: exact(m)}}
}
func path(m x.StringMatch) x.Permission { return x.Permission{Kind: x.PermURLPath, Path: m} }
func port(p uint32) x.Permission        { return x.Permission{Kind: x.PermDestPort, Port: p} }
func header(name string, m x.StringMatch) x.Permission {
	return x.Permission{Kind: x.PermHeader, Header: x.HeaderMatcher{Name: name, String: m}}
}
func permOr(r ...x.Permission) x.Permission  { return x.Permission{Kind: x.PermOr, Rules: r} }
func permAnd(r ...x.Permission) x.Permission { return x.Permission{Kind: x.PermAnd, Rules: r} }
func permNot(r x.Permission) x.Permission {
	return x.Permission{Kind: x.PermNot, Rules: []x.Permission{r}}
}
func peer(m x.StringMatch) x.Principal {
	return x.Principal{Kind: x.PrinAuthenticated, Name: m}
}
func prinOr(ids ...x.Principal) x.Principal  { return x.Principal{Kind: x.PrinOr, IDs: ids} }
func prinAnd(ids ...x.Principal) x.Principal { return x.Principal{Kind: x.PrinAnd, IDs: ids} }
func prinNot(id x.Principal) x.Principal     { return x.Principal{Kind: x.PrinNot, IDs: []x.Principal{id}} }
func directIP(c string) x.Principal {
	return x.Principal{Kind: x.PrinDirectRemoteIP, CIDR: netip.MustParsePrefix(c)}
}
func remoteIP(c string) x.Principal {
	return x.Principal{Kind: x.PrinRemoteIP, CIDR: netip.MustParsePrefix(c)}
}
func claim(payload string, m x.StringMatch, inList bool, path ...string) x.Principal {
	return x.Principal{Kind: x.PrinMetadata, Payload: payload, Claim: path, Value: m, InList: inList}
}

func pol(name string, perms []x.Permission, prins []x.Principal) x.RBACPolicy {
	return x.RBACPolicy{Name: name, Permissions: perms, Principals: prins}
}

func rules(a x.RBACAction, ps ...x.RBACPolicy) x.HTTPRBAC {
	return x.HTTPRBAC{Rules: &x.RBAC{Action: a, Policies: ps}}
}

func mustCompile(t testing.TB, f *x.AuthzFilters, opts Options) *Engine {
	t.Helper()
	e, err := Compile(f, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

func get(p string) *Request {
	return &Request{Method: "GET", Host: "svc.ns", Path: p, Header: http.Header{}, DestPort: 8080,
		DirectIP: netip.MustParseAddr("10.0.0.1"), RemoteIP: netip.MustParseAddr("10.0.0.1")}
}

func with(r *Request, f func(r *Request)) *Request { f(r); return r }

const fooSA = "spiffe://cluster.local/ns/foo/sa/web"

// meshPolicies is a policy set like the control plane generates: DENY,
// ALLOW and AUDIT filters.
func meshPolicies() *x.AuthzFilters {
	return &x.AuthzFilters{
		JWT: &x.JWTAuthn{AllowMissing: true, Providers: []x.JWTProvider{
			{Name: "p", Issuer: "https://issuer", JWKS: []byte(`{"keys":[]}`), PayloadInMetadata: "p"},
		}},
		RBAC: []x.HTTPRBAC{
			rules(x.RBACDeny,
				pol("ns/deny-admin/rule-0", []x.Permission{permAnd(path(prefix("/admin")))}, []x.Principal{anyPrin()}),
				pol("ns/deny-evil/rule-0", []x.Permission{header("x-evil", exact("1"))}, []x.Principal{anyPrin()}),
				pol("ns/deny-net/rule-0", []x.Permission{anyPerm()}, []x.Principal{remoteIP("192.0.2.0/24")}),
			),
			rules(x.RBACAllow,
				pol("ns/allow-foo/rule-0",
					[]x.Permission{permAnd(permOr(method("GET"), method("HEAD")), permOr(path(exact("/")), path(prefix("/api/"))))},
					[]x.Principal{prinAnd(prinOr(peer(regex(`spiffe://cluster\.local/ns/foo/sa/[^/]+`))))}),
				pol("ns/allow-jwt/rule-0",
					[]x.Permission{path(prefix("/jwt/"))},
					[]x.Principal{prinAnd(claim("p", exact("https://issuer"), false, "iss"), claim("p", exact("admins"), true, "groups"))}),
				pol("ns/allow-not/rule-0",
					[]x.Permission{permAnd(path(exact("/open")), permNot(method("DELETE")))},
					[]x.Principal{prinNot(peer(suffix("/sa/bad")))}),
				pol("ns/allow-port/rule-0", []x.Permission{port(9090)}, []x.Principal{directIP("10.1.0.0/16")}),
			),
			{ShadowRules: &x.RBAC{Action: x.RBACLog, Policies: []x.RBACPolicy{
				pol("ns/audit/rule-0", []x.Permission{path(prefix("/api/"))}, []x.Principal{anyPrin()}),
			}}},
		},
	}
}

func TestCheck(t *testing.T) {
	e := mustCompile(t, meshPolicies(), Options{})
	peerFoo := func(r *Request) { r.PeerID = fooSA }
	tests := []struct {
		name   string
		req    *Request
		allow  bool
		policy string
		audit  []string
	}{
		{"allow peer", with(get("/api/x"), peerFoo), true, "", []string{"ns/audit/rule-0"}},
		{"allow root exact", with(get("/"), peerFoo), true, "", nil},
		{"head", with(get("/"), func(r *Request) { peerFoo(r); r.Method = "HEAD" }), true, "", nil},
		{"post not allowed", with(get("/"), func(r *Request) { peerFoo(r); r.Method = "POST" }), false, "", nil},
		{"plaintext peer", get("/api/x"), false, "", nil},
		{"other namespace", with(get("/api/x"), func(r *Request) { r.PeerID = "spiffe://cluster.local/ns/bar/sa/web" }), false, "", nil},
		{"regex no nested", with(get("/"), func(r *Request) { r.PeerID = "spiffe://cluster.local/ns/foo/sa/a/b" }), false, "", nil},
		{"deny prefix wins", with(get("/admin/x"), peerFoo), false, "ns/deny-admin/rule-0", nil},
		{"deny prefix no segment", with(get("/administrator"), peerFoo), false, "ns/deny-admin/rule-0", nil},
		{"deny header any value", with(get("/"), func(r *Request) { peerFoo(r); r.Header["X-Evil"] = []string{"0", "1"} }), false, "ns/deny-evil/rule-0", nil},
		{"deny header absent", with(get("/"), peerFoo), true, "", nil},
		{"deny remote ip", with(get("/"), func(r *Request) { peerFoo(r); r.RemoteIP = netip.MustParseAddr("192.0.2.9") }), false, "ns/deny-net/rule-0", nil},
		{"deny remote ip 4in6", with(get("/"), func(r *Request) { peerFoo(r); r.RemoteIP = netip.MustParseAddr("::ffff:192.0.2.9") }), false, "ns/deny-net/rule-0", nil},
		{"jwt claims", with(get("/jwt/a"), func(r *Request) {
			r.Claims = map[string]map[string]any{"p": {"iss": "https://issuer", "groups": []any{"users", "admins"}}}
		}), true, "", nil},
		{"jwt list claim missing element", with(get("/jwt/a"), func(r *Request) {
			r.Claims = map[string]map[string]any{"p": {"iss": "https://issuer", "groups": []any{"users"}}}
		}), false, "", nil},
		{"jwt wrong payload", with(get("/jwt/a"), func(r *Request) {
			r.Claims = map[string]map[string]any{"q": {"iss": "https://issuer", "groups": []any{"admins"}}}
		}), false, "", nil},
		{"jwt string claim not list", with(get("/jwt/a"), func(r *Request) {
			r.Claims = map[string]map[string]any{"p": {"iss": "https://issuer", "groups": "admins"}}
		}), false, "", nil},
		{"not rule", get("/open"), true, "", nil},
		{"not rule method", with(get("/open"), func(r *Request) { r.Method = "DELETE" }), false, "", nil},
		{"not principal", with(get("/open"), func(r *Request) { r.PeerID = "spiffe://x/ns/a/sa/bad" }), false, "", nil},
		{"port and cidr", with(get("/z"), func(r *Request) { r.DestPort = 9090; r.DirectIP = netip.MustParseAddr("10.1.2.3") }), true, "", nil},
		{"port wrong cidr", with(get("/z"), func(r *Request) { r.DestPort = 9090 }), false, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Check(context.Background(), tt.req)
			if d.Allowed != tt.allow || d.Policy != tt.policy || !slices.Equal(d.Audit, tt.audit) {
				t.Fatalf("got %+v, want allowed=%v policy=%q audit=%v", d, tt.allow, tt.policy, tt.audit)
			}
			if !d.Allowed && d.Status != 403 {
				t.Fatalf("status %d, want 403", d.Status)
			}
		})
	}
}

func TestCheckLogNeverDenies(t *testing.T) {
	e := mustCompile(t, &x.AuthzFilters{RBAC: []x.HTTPRBAC{
		rules(x.RBACLog, pol("b", []x.Permission{anyPerm()}, []x.Principal{anyPrin()}), pol("a", []x.Permission{anyPerm()}, []x.Principal{anyPrin()})),
	}}, Options{})
	d := e.Check(context.Background(), get("/"))
	if !d.Allowed || !slices.Equal(d.Audit, []string{"a", "b"}) {
		t.Fatalf("got %+v", d)
	}
}

func TestCheckEmptyAllowDeniesAll(t *testing.T) {
	e := mustCompile(t, &x.AuthzFilters{RBAC: []x.HTTPRBAC{rules(x.RBACAllow)}}, Options{})
	if d := e.Check(context.Background(), get("/")); d.Allowed {
		t.Fatalf("ALLOW with no policy allowed: %+v", d)
	}
	var nilEngine *Engine
	if d := nilEngine.Check(context.Background(), get("/")); !d.Allowed {
		t.Fatal("nil engine denied")
	}
	if d := mustCompile(t, nil, Options{}).Check(context.Background(), get("/")); !d.Allowed {
		t.Fatal("no filters denied")
	}
	if d := DenyAll("bad config").Check(context.Background(), get("/")); d.Allowed || d.Status != 403 {
		t.Fatalf("DenyAll: %+v", d)
	}
}

func TestHeaderMatching(t *testing.T) {
	tests := []struct {
		name string
		h    x.HeaderMatcher
		req  *Request
		want bool
	}{
		{"authority ignore case", x.HeaderMatcher{Name: ":authority", String: x.StringMatch{Kind: x.MatchExact, Value: "SVC.NS", IgnoreCase: true}}, get("/"), true},
		{"path with query", x.HeaderMatcher{Name: ":path", String: exact("/a?b=1")}, with(get("/a"), func(r *Request) { r.Query = "b=1" }), true},
		{"present", x.HeaderMatcher{Name: "x-a", Present: true}, with(get("/"), func(r *Request) { r.Header.Set("X-A", "") }), true},
		{"present absent", x.HeaderMatcher{Name: "x-a", Present: true}, get("/"), false},
		{"absent inverted", x.HeaderMatcher{Name: "x-a", Present: true, Invert: true}, get("/"), true},
		{"invert no value matches", x.HeaderMatcher{Name: "x-a", String: exact("good"), Invert: true}, with(get("/"), func(r *Request) { r.Header["X-A"] = []string{"bad", "worse"} }), true},
		{"invert one value matches", x.HeaderMatcher{Name: "x-a", String: exact("good"), Invert: true}, with(get("/"), func(r *Request) { r.Header["X-A"] = []string{"bad", "good"} }), false},
		{"values not joined", x.HeaderMatcher{Name: "x-a", String: exact("a,b")}, with(get("/"), func(r *Request) { r.Header["X-A"] = []string{"a", "b"} }), false},
		{"contains", x.HeaderMatcher{Name: "x-a", String: x.StringMatch{Kind: x.MatchContains, Value: "MID", IgnoreCase: true}}, with(get("/"), func(r *Request) { r.Header.Set("X-A", "amidb") }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := compileHeader(&tt.h)
			if err != nil {
				t.Fatal(err)
			}
			if got := p(tt.req); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClaimScalars(t *testing.T) {
	r := with(get("/"), func(r *Request) {
		r.Claims = map[string]map[string]any{"p": {"n": 42.0, "b": true, "o": map[string]any{"s": "x"}, "l": []any{1.5, "y"}}}
	})
	for _, tt := range []struct {
		p    x.Principal
		want bool
	}{
		{claim("p", exact("42"), false, "n"), true},
		{claim("p", exact("true"), false, "b"), true},
		{claim("p", exact("x"), false, "o", "s"), true},
		{claim("p", exact("1.5"), true, "l"), true},
		{claim("p", exact("y"), false, "l"), false},
		{claim("p", exact("x"), false, "missing"), false},
		{x.Principal{Kind: x.PrinMetadata, Payload: "p", Claim: []string{"missing"}, Value: exact("x"), Invert: true}, true},
	} {
		pr, err := compilePrincipal(&tt.p, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := pr(r); got != tt.want {
			t.Errorf("%+v: got %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	bad := []struct {
		name string
		f    *x.AuthzFilters
		opts Options
		want string
	}{
		{"unknown permission", &x.AuthzFilters{RBAC: []x.HTTPRBAC{rules(x.RBACDeny, pol("p", []x.Permission{{}}, []x.Principal{anyPrin()}))}}, Options{}, "unknown permission kind"},
		{"regex not compiled", &x.AuthzFilters{RBAC: []x.HTTPRBAC{rules(x.RBACDeny, pol("p", []x.Permission{path(x.StringMatch{Kind: x.MatchRegex})}, []x.Principal{anyPrin()}))}}, Options{}, "regex"},
		{"pseudo header", &x.AuthzFilters{RBAC: []x.HTTPRBAC{rules(x.RBACDeny, pol("p", []x.Permission{header(":protocol", exact("x"))}, []x.Principal{anyPrin()}))}}, Options{}, "pseudo-header"},
		{"not without rule", &x.AuthzFilters{RBAC: []x.HTTPRBAC{rules(x.RBACAllow, pol("p", []x.Permission{{Kind: x.PermNot}}, []x.Principal{anyPrin()}))}}, Options{}, "not_rule"},
		{"empty principals", &x.AuthzFilters{RBAC: []x.HTTPRBAC{rules(x.RBACAllow, pol("p", []x.Permission{anyPerm()}, nil))}}, Options{}, "principals"},
		{"bad action", &x.AuthzFilters{RBAC: []x.HTTPRBAC{{Rules: &x.RBAC{Action: 7}}}}, Options{}, "action"},
		{"ext without client", &x.AuthzFilters{ExtAuthz: []x.ExtAuthz{{Cluster: "c"}}}, Options{}, "Options.ExtAuthz"},
		{"order mismatch", &x.AuthzFilters{RBAC: []x.HTTPRBAC{rules(x.RBACAllow)}, Order: []string{}}, Options{}, "order"},
		{"jwks key without alg", &x.AuthzFilters{JWT: &x.JWTAuthn{Providers: []x.JWTProvider{{Name: "p", Issuer: "i", JWKS: []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`)}}}}, Options{}, "alg"},
		{"bad jwks", &x.AuthzFilters{JWT: &x.JWTAuthn{Providers: []x.JWTProvider{{Name: "p", Issuer: "i", JWKS: []byte(`{`)}}}}, Options{}, "JWKS"},
		{"hmac jwks", &x.AuthzFilters{JWT: &x.JWTAuthn{Providers: []x.JWTProvider{{Name: "p", Issuer: "i", JWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}`)}}}}, Options{}, "never allowed"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.f, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "authz: ") {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	_, err := CompileNetwork(&x.NetworkRBAC{Rules: &x.RBAC{Action: x.RBACAllow, Policies: []x.RBACPolicy{
		pol("p", []x.Permission{path(exact("/"))}, []x.Principal{anyPrin()}),
	}}})
	if err == nil || !strings.Contains(err.Error(), "L4") {
		t.Fatalf("network RBAC with url_path: %v", err)
	}
}

func TestCheckNetwork(t *testing.T) {
	e, err := CompileNetwork(&x.NetworkRBAC{
		StatPrefix: "tcp",
		Rules: &x.RBAC{Action: x.RBACDeny, Policies: []x.RBACPolicy{
			pol("ns/deny/rule-0", []x.Permission{port(5432)}, []x.Principal{prinNot(peer(prefix("spiffe://cluster.local/ns/db/")))}),
		}},
		Then: &x.NetworkRBAC{StatPrefix: "tcp", Rules: &x.RBAC{Action: x.RBACAllow, Policies: []x.RBACPolicy{
			pol("ns/allow/rule-0", []x.Permission{anyPerm()}, []x.Principal{directIP("10.0.0.0/8")}),
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tcp := func(port uint32, id string) *Request {
		return &Request{TCP: true, DestPort: port, PeerID: id, DirectIP: netip.MustParseAddr("10.0.0.2")}
	}
	if d := e.Check(context.Background(), tcp(5432, "")); d.Allowed || d.Policy != "ns/deny/rule-0" {
		t.Fatalf("plaintext to 5432: %+v", d)
	}
	if d := e.Check(context.Background(), tcp(5432, "spiffe://cluster.local/ns/db/sa/app")); !d.Allowed {
		t.Fatalf("db peer: %+v", d)
	}
	if d := e.Check(context.Background(), tcp(80, "")); !d.Allowed {
		t.Fatalf("other port: %+v", d)
	}
	outside := tcp(80, "")
	outside.DirectIP = netip.MustParseAddr("172.16.0.1")
	if d := e.Check(context.Background(), outside); d.Allowed || d.Policy != "" {
		t.Fatalf("chained ALLOW not applied: %+v", d)
	}
}
