package route

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func TestReplacePrefix(t *testing.T) {
	for _, tc := range []struct {
		kind             xdsresource.PathKind
		prefix, repl, in string
		want             string
	}{
		{xdsresource.PathSeparatedPrefix, "/foo", "/bar", "/foo/x", "/bar/x"},
		{xdsresource.PathSeparatedPrefix, "/foo", "/bar", "/foo", "/bar"},
		{xdsresource.PathSeparatedPrefix, "/foo", "/", "/foo/x", "/x"},
		{xdsresource.PathSeparatedPrefix, "/foo", "/", "/foo", "/"},
		{xdsresource.PathSeparatedPrefix, "/foo", "", "/foo/x", "/x"},
		{xdsresource.PathPrefix, "/foo/", "/bar", "/foo/x", "/bar/x"},
		{xdsresource.PathPrefix, "/foo/", "/bar/", "/foo/x", "/bar/x"},
		{xdsresource.PathPrefix, "/foo", "/bar", "/foobar", "/barbar"},
		{xdsresource.PathPrefix, "/", "/v2", "/users", "/v2/users"},
		{xdsresource.PathExact, "/a", "/b", "/a", "/b"},
	} {
		rt := &Route{match: xdsresource.RouteMatch{PathKind: tc.kind, Path: tc.prefix}}
		if got := rt.replacePrefix(tc.in, tc.repl); got != tc.want {
			t.Errorf("%q→%q on %q: %q, want %q", tc.prefix, tc.repl, tc.in, got, tc.want)
		}
	}
}

func TestRewritePath(t *testing.T) {
	rt := compileRoute(&xdsresource.Route{Match: xdsresource.RouteMatch{PathKind: xdsresource.PathRegex},
		RouteExtras: xdsresource.RouteExtras{RegexRewrite: &xdsresource.RegexRewrite{Pattern: regexp.MustCompile(`^/.*$`), Substitution: "/fixed%20path"}}})
	u, _ := url.Parse("/any/thing?q=1")
	rt.RewritePath(u)
	if u.Path != "/fixed path" || u.RawPath != "/fixed%20path" || u.RequestURI() != "/fixed%20path?q=1" {
		t.Fatalf("regex rewrite: %q %q %q", u.Path, u.RawPath, u.RequestURI())
	}
}

func TestHeaders(t *testing.T) {
	m := compileHeaders(xdsresource.HeaderMutation{
		Add: []xdsresource.HeaderValueOption{
			{Name: "x-set", Value: "new"}, {Name: "x-add", Value: "two", Append: true},
			{Name: "x-absent", Value: "default", IfAbsent: true}, {Name: "x-present", Value: "ignored", IfAbsent: true},
			{Name: ":authority", Value: "nope"}, {Name: "host", Value: "nope"},
		},
		Remove: []string{"x-secret", ":path"},
	})
	h := http.Header{"X-Set": {"old"}, "X-Add": {"one"}, "X-Present": {"kept"}, "X-Secret": {"s"}}
	m.Apply(h)
	want := http.Header{"X-Set": {"new"}, "X-Add": {"one", "two"}, "X-Absent": {"default"}, "X-Present": {"kept"}}
	if len(h) != len(want) {
		t.Fatalf("got %v, want %v", h, want)
	}
	for k, v := range want {
		if strings.Join(h[k], ",") != strings.Join(v, ",") {
			t.Fatalf("%s: got %v, want %v", k, h[k], v)
		}
	}
}

func TestRetryStatus(t *testing.T) {
	p := compileRetry(&xdsresource.RetryPolicy{RetryOn: []string{"gateway-error", "retriable-4xx", "retriable-status-codes", "unavailable"},
		NumRetries: 2, RetriableStatusCodes: []uint32{418}, RetriableMethods: []string{"GET"}})
	for _, tc := range []struct {
		code int
		grpc string
		want bool
	}{
		{500, "", false}, {502, "", true}, {503, "", true}, {504, "", true}, {409, "", true}, {418, "", true},
		{404, "", false}, {200, "14", true}, {200, "13", false}, {200, "", false},
	} {
		h := http.Header{}
		if tc.grpc != "" {
			h.Set("grpc-status", tc.grpc)
		}
		if got := p.RetryStatus(tc.code, h); got != tc.want {
			t.Errorf("%d grpc-status %q: %v, want %v", tc.code, tc.grpc, got, tc.want)
		}
	}
	if !p.MethodAllowed("GET") || p.MethodAllowed("POST") {
		t.Fatal("methods")
	}
	if p.BackoffBase <= 0 || p.BackoffMax != 10*p.BackoffBase {
		t.Fatalf("backoff defaults: %v %v", p.BackoffBase, p.BackoffMax)
	}
	if all := compileRetry(&xdsresource.RetryPolicy{RetryOn: []string{"5xx"}}); !all.MethodAllowed("POST") || !all.RetryStatus(500, nil) {
		t.Fatal("nil methods allow any; 5xx retries 500")
	}
}

func TestGRPCOnlyAndDump(t *testing.T) {
	tb := Compile(&xdsresource.RouteConfiguration{Name: "r", VirtualHosts: []xdsresource.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []xdsresource.Route{
		{Name: "grpc", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/"}, Action: xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{{Name: "g", Weight: 1}}},
			RouteExtras: xdsresource.RouteExtras{GRPCOnly: true, Retry: &xdsresource.RetryPolicy{RetryOn: []string{"unavailable"}, NumRetries: 2},
				Fault: &xdsresource.Fault{AbortGRPCStatus: 14, HasGRPCAbort: true, AbortPerMillion: 1000}}},
		{Name: "redirect", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/"},
			RouteExtras: xdsresource.RouteExtras{Redirect: &xdsresource.Redirect{Scheme: "https"}}},
	}}}})
	r := httptest.NewRequest("POST", "/svc/M", nil)
	r.Header.Set("Content-Type", "application/grpc+proto")
	if rt := tb.VirtualHost("x").Match(r); rt == nil || rt.Name != "grpc" {
		t.Fatalf("gRPC request: %v", rt)
	}
	r.Header.Set("Content-Type", "application/json")
	rt := tb.VirtualHost("x").Match(r)
	if rt == nil || rt.Name != "redirect" || rt.DirectStatus != 0 || rt.Redirect.StatusCode != 301 {
		t.Fatalf("other request: %+v", rt)
	}
	if loc := rt.RedirectLocation(httptest.NewRequest("GET", "http://x:80/a?b=c", nil)); loc != "https://x/a?b=c" {
		t.Fatalf("location %q", loc)
	}
	b, _ := json.Marshal(tb.Dump())
	for _, want := range []string{`"grpc":true`, `"retryOn":["unavailable"]`, `"abortGrpcStatus":14`, `"redirect":{"scheme":"https","statusCode":301}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("dump lacks %s: %s", want, b)
		}
	}
}
