package normalize_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/proxy/normalize"
)

func mustNew(t testing.TB, o normalize.Options) *normalize.Normalizer {
	t.Helper()
	n, err := normalize.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPath(t *testing.T) {
	decode := normalize.Options{SlashEncoding: normalize.SlashDecode}
	keep := normalize.Options{KeepEmptySegments: true}
	params := normalize.Options{PathParams: normalize.ParamsReject}
	for _, tc := range []struct {
		in   string
		o    normalize.Options
		want string
		err  error
	}{
		{in: "/", want: "/"},
		{in: "/admin", want: "/admin"},
		{in: "/admin/", want: "/admin/"},
		{in: "/ADMIN", want: "/ADMIN"}, // case is significant
		{in: "//admin", want: "/admin"},
		{in: "///admin//x///", want: "/admin/x/"},
		{in: "//admin", o: keep, want: "//admin"},
		{in: "/a//../b", o: keep, want: "/a/b"},
		{in: "/./admin", want: "/admin"},
		{in: "/x/../admin", want: "/admin"},
		{in: "/../../admin", want: "/admin"},
		{in: "/a/b/..", want: "/a/"},
		{in: "/a/b/.", want: "/a/b/"},
		{in: "/..", want: "/"},
		{in: "/a/...", want: "/a/..."},
		{in: "/a/..b/.c", want: "/a/..b/.c"},
		{in: "/%2e%2e/admin", want: "/admin"},
		{in: "/x/%2E%2e/admin", want: "/admin"},
		{in: "/x/.%2e/admin", want: "/admin"},
		{in: "/%2e/admin", want: "/admin"},
		{in: "/%61dmin", want: "/admin"},                     // unreserved decoded
		{in: "/a%7eb%2D", want: "/a~b-"},                     // unreserved decoded
		{in: "/a%3bb%3A", want: "/a%3Bb%3A"},                 // reserved kept, hex upper-cased
		{in: "/a%20b", want: "/a%20b"},                       // space stays encoded
		{in: "/%252e%252e/admin", want: "/%252e%252e/admin"}, // double encoding stays literal
		{in: "/%25", want: "/%25"},
		{in: "/a b", want: "/a%20b"},
		{in: `/a"<>{}|^` + "`", want: "/a%22%3C%3E%7B%7D%7C%5E%60"},
		{in: "/caf\xc3\xa9", want: "/caf%C3%A9"},
		{in: "/caf%c3%a9", want: "/caf%C3%A9"},
		{in: "/a?b", want: "/a%3Fb"},
		{in: "/a;jsessionid=1/b", want: "/a;jsessionid=1/b"},
		{in: "/a:b@c!$&'()*+,=", want: "/a:b@c!$&'()*+,="},

		// Encoded separators.
		{in: "/%2Fadmin", err: normalize.ErrEncodedSlash},
		{in: "/x%2fadmin", err: normalize.ErrEncodedSlash},
		{in: "/%5Cadmin", err: normalize.ErrEncodedSlash},
		{in: `/x\..\admin`, err: normalize.ErrEncodedSlash},
		{in: "/%2e%2e%2fadmin", err: normalize.ErrEncodedSlash},
		{in: "/%2Fadmin", o: decode, want: "/admin"},
		{in: "/x/%2e%2e%2fadmin", o: decode, want: "/admin"},
		{in: "/x%2F..%2Fadmin", o: decode, want: "/admin"},
		{in: "/x%5C..%5Cadmin", o: decode, want: "/admin"},
		{in: `/x\..\admin`, o: decode, want: "/admin"},
		{in: "/%2F%2Fadmin", o: decode, want: "/admin"},
		{in: "/%2F%2Fadmin", o: normalize.Options{SlashEncoding: normalize.SlashDecode, KeepEmptySegments: true}, want: "///admin"},

		// Path parameters.
		{in: "/x/..;/admin", err: normalize.ErrDotParams},
		{in: "/x/..;x=1/admin", err: normalize.ErrDotParams},
		{in: "/x/.;/admin", err: normalize.ErrDotParams},
		{in: "/x/%2e%2e;/admin", err: normalize.ErrDotParams},
		{in: "/x/..%3b/admin", err: normalize.ErrDotParams},
		{in: "/admin;x", o: params, err: normalize.ErrPathParams},
		{in: "/admin%3Bx", o: params, want: "/admin%3Bx"},

		// Bad input.
		{in: "/admin%00", err: normalize.ErrNUL},
		{in: "/admin\x00", err: normalize.ErrNUL},
		{in: "/admin\r\n", err: normalize.ErrControl},
		{in: "/admin\x7f", err: normalize.ErrControl},
		{in: "/admin#x", err: normalize.ErrFragment},
		{in: "/admin%", err: normalize.ErrBadEscape},
		{in: "/admin%2", err: normalize.ErrBadEscape},
		{in: "/admin%zz", err: normalize.ErrBadEscape},
		{in: "/admin%%30", err: normalize.ErrBadEscape},
		{in: "/%c0%ae%c0%ae/admin", err: normalize.ErrBadUTF8}, // overlong "."
		{in: "/%e0%80%ae", err: normalize.ErrBadUTF8},
		{in: "/%ff", err: normalize.ErrBadUTF8},
		{in: "/\xff", err: normalize.ErrBadUTF8},
		{in: "/%ed%a0%80", err: normalize.ErrBadUTF8}, // surrogate
		{in: "admin", err: normalize.ErrTarget},
		{in: "", err: normalize.ErrTarget},
	} {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			n := mustNew(t, tc.o)
			got, err := n.Path(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Path(%q) = %q, %v; want error %v", tc.in, got, err, tc.err)
				}
				var e *normalize.Error
				if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
					t.Fatalf("error %v is not a 400 *Error", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Path(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			again, err := n.Path(got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: Path(%q) = %q, %v", got, again, err)
			}
		})
	}
}

func TestHost(t *testing.T) {
	for _, tc := range []struct {
		in, port, want string
		err            error
	}{
		{in: "api.example", port: "80", want: "api.example"},
		{in: "API.Example", port: "80", want: "api.example"},
		{in: "api.example.", port: "80", want: "api.example"},
		{in: "ADMIN.example.", port: "80", want: "admin.example"},
		{in: "api.example:80", port: "80", want: "api.example"},
		{in: "api.example.:80", port: "80", want: "api.example"},
		{in: "api.example:080", port: "80", want: "api.example"},
		{in: "api.example:", port: "80", want: "api.example"},
		{in: "api.example:443", port: "80", want: "api.example:443"},
		{in: "api.example:443", port: "443", want: "api.example"},
		{in: "api.example:8080", port: "80", want: "api.example:8080"},
		{in: "catalog.shop:9080", port: "", want: "catalog.shop:9080"},
		{in: "my_host.local", port: "80", want: "my_host.local"},
		{in: "10.0.0.1:80", port: "80", want: "10.0.0.1"},
		{in: "[::1]", port: "80", want: "[::1]"},
		{in: "[0:0:0::1]:80", port: "80", want: "[::1]"},
		{in: "[2001:DB8::1]:8080", port: "80", want: "[2001:db8::1]:8080"},
		{in: "", err: normalize.ErrNoHost},
		{in: "a..b", err: normalize.ErrBadHost},
		{in: ".a", err: normalize.ErrBadHost},
		{in: "a..", err: normalize.ErrBadHost},
		{in: ".", err: normalize.ErrBadHost},
		{in: "a b", err: normalize.ErrBadHost},
		{in: "a%2eb", err: normalize.ErrBadHost},
		{in: "user@host", err: normalize.ErrBadHost},
		{in: "host:0", err: normalize.ErrBadHost},
		{in: "host:65536", err: normalize.ErrBadHost},
		{in: "host:8o", err: normalize.ErrBadHost},
		{in: "host:80:80", err: normalize.ErrBadHost},
		{in: "::1", err: normalize.ErrBadHost},
		{in: "[::1", err: normalize.ErrBadHost},
		{in: "[::1]x", err: normalize.ErrBadHost},
		{in: "[fe80::1%eth0]", err: normalize.ErrBadHost},
		{in: "[1.2.3.4]", err: normalize.ErrBadHost},
		{in: "caf\xc3\xa9.example", err: normalize.ErrBadHost},
		{in: strings.Repeat("a", 64) + ".example", err: normalize.ErrBadHost},
	} {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			got, err := normalize.Host(tc.in, tc.port)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Host(%q) = %q, %v; want %v", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Host(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			if again, err := normalize.Host(got, tc.port); err != nil || again != got {
				t.Fatalf("not idempotent: Host(%q) = %q, %v", got, again, err)
			}
		})
	}
}

func request(target, host string, h http.Header) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RequestURI = target
	r.Host = host
	if h != nil {
		r.Header = h
	}
	return r
}

func TestRequest(t *testing.T) {
	n := mustNew(t, normalize.Options{StripHeaders: []string{"x-jwt-sub", "x-claim-*"}})
	r := request("/x/../a%2e%61dmin/%7e?q=%00&b=1#", "API.example.:80", http.Header{"Accept": {"*/*"}})
	if _, err := n.Request(r); !errors.Is(err, normalize.ErrFragment) {
		t.Fatalf("fragment: %v", err)
	}

	r = request("/x/../a%2e%61dmin/%7e?q=%2F&b=1", "API.example.:80", http.Header{
		"Accept":                  {"*/*"},
		"X-Forwarded-Client-Cert": {"By=spiffe://evil"},
		"X-Weft-Source-Workload":  {"web"},
		"X-Jwt-Sub":               {"admin"},
		"X-Claim-Groups":          {"root"},
		"X-Jwt-Subject":           {"kept"},
	})
	res, err := n.Request(r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != "/a.admin/~" || r.URL.RawPath != "/a.admin/~" || r.URL.Path != "/a.admin/~" || r.URL.EscapedPath() != "/a.admin/~" {
		t.Errorf("path: %q raw %q decoded %q", res.Path, r.URL.RawPath, r.URL.Path)
	}
	if r.URL.RawQuery != "q=%2F&b=1" || r.RequestURI != "/a.admin/~?q=%2F&b=1" || r.URL.RequestURI() != "/a.admin/~?q=%2F&b=1" {
		t.Errorf("query: %q, request URI %q, %q", r.URL.RawQuery, r.RequestURI, r.URL.RequestURI())
	}
	if res.Host != "api.example" || r.Host != "api.example" {
		t.Errorf("host: %q %q", res.Host, r.Host)
	}
	for _, h := range []string{"X-Forwarded-Client-Cert", "X-Weft-Source-Workload", "X-Jwt-Sub", "X-Claim-Groups"} {
		if _, ok := r.Header[h]; ok {
			t.Errorf("%s not stripped", h)
		}
		if _, ok := res.Stripped[h]; !ok {
			t.Errorf("%s not in Stripped", h)
		}
	}
	if r.Header.Get("X-Jwt-Subject") != "kept" || r.Header.Get("Accept") != "*/*" {
		t.Errorf("headers: %v", r.Header)
	}
	if res.Stripped.Get("X-Weft-Source-Workload") != "web" {
		t.Errorf("stripped: %v", res.Stripped)
	}

	// Path with encoded reserved characters: Path and RawPath agree.
	r = request("/a%3Bb/c%20d", "h", nil)
	if _, err := n.Request(r); err != nil {
		t.Fatal(err)
	}
	if r.URL.Path != "/a;b/c d" || r.URL.EscapedPath() != "/a%3Bb/c%20d" {
		t.Errorf("decoded %q escaped %q", r.URL.Path, r.URL.EscapedPath())
	}

	// Absolute form (a request to the outbound proxy).
	r = request("HTTP://Catalog.Shop:80//items/./1?x", "catalog.shop:80", nil)
	r.URL.Host = "catalog.shop:80"
	if res, err = n.Request(r); err != nil {
		t.Fatal(err)
	}
	if res.Path != "/items/1" || r.Host != "catalog.shop" || r.URL.Host != "catalog.shop" || r.RequestURI != "/items/1?x" {
		t.Errorf("absolute form: %q %q %q %q", res.Path, r.Host, r.URL.Host, r.RequestURI)
	}
	r = request("http://catalog.shop", "catalog.shop", nil)
	if res, err = n.Request(r); err != nil || res.Path != "/" {
		t.Errorf("absolute form without path: %v %v", res, err)
	}

	// TLS makes 443 the default port.
	r = request("/", "api.example:443", nil)
	r.TLS = &tls.ConnectionState{}
	if res, err = n.Request(r); err != nil || res.Host != "api.example" {
		t.Errorf("https default port: %v %v", res, err)
	}

	// Rejections leave the request as it was.
	for _, tc := range []struct {
		name   string
		target string
		host   string
		h      http.Header
		method string
		err    error
	}{
		{name: "underscore", target: "/", host: "h", h: http.Header{"X_user": {"a"}}, err: normalize.ErrHeaderUnderscore},
		{name: "underscore lower", target: "/", host: "h", h: http.Header{"x_forwarded_client_cert": {"a"}}, err: normalize.ErrHeaderUnderscore},
		{name: "bad name", target: "/", host: "h", h: http.Header{"X:y": {"a"}}, err: normalize.ErrHeaderName},
		{name: "NUL value", target: "/", host: "h", h: http.Header{"X-A": {"ok", "a\x00b"}}, err: normalize.ErrHeaderValue},
		{name: "CRLF value", target: "/", host: "h", h: http.Header{"X-A": {"a\r\nX-B: c"}}, err: normalize.ErrHeaderValue},
		{name: "query control", target: "/?a=\x01", host: "h", err: normalize.ErrControl},
		{name: "query NUL", target: "/?a=\x00", host: "h", err: normalize.ErrNUL},
		{name: "fragment in query", target: "/?a#b", host: "h", err: normalize.ErrFragment},
		{name: "no host", target: "/", host: "", err: normalize.ErrNoHost},
		{name: "bad host", target: "/", host: "a/b", err: normalize.ErrBadHost},
		{name: "asterisk", target: "*", host: "h", err: normalize.ErrTarget},
		{name: "connect", target: "h:443", host: "h:443", method: http.MethodConnect, err: normalize.ErrTarget},
		{name: "other scheme", target: "ftp://h/", host: "h", err: normalize.ErrTarget},
		{name: "userinfo", target: "http://u@h/", host: "h", err: normalize.ErrBadHost},
		{name: "encoded slash", target: "/a%2fb", host: "h", err: normalize.ErrEncodedSlash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h == nil {
				h = http.Header{}
			}
			h.Set("X-Forwarded-Client-Cert", "x")
			r := request(tc.target, tc.host, h)
			if tc.method != "" {
				r.Method = tc.method
			}
			before := r.Clone(r.Context())
			if _, err := n.Request(r); !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if r.RequestURI != before.RequestURI || r.Host != before.Host || len(r.Header) != len(before.Header) || *r.URL != *before.URL {
				t.Fatal("rejected request was modified")
			}
			if strings.Contains(tc.err.Error(), tc.target) && tc.target != "/" {
				t.Fatal("error echoes input")
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		hops int
		peer string
		xff  []string
		want string
	}{
		{hops: 0, peer: "10.0.0.9:1234", xff: []string{"1.1.1.1"}, want: "10.0.0.9"},
		{hops: 1, peer: "10.0.0.9:1234", xff: []string{"6.6.6.6, 1.1.1.1"}, want: "1.1.1.1"},
		{hops: 1, peer: "10.0.0.9:1234", xff: []string{"6.6.6.6", "1.1.1.1"}, want: "1.1.1.1"}, // every header value
		{hops: 2, peer: "10.0.0.9:1234", xff: []string{"6.6.6.6, 2.2.2.2", "10.0.0.8"}, want: "2.2.2.2"},
		{hops: 2, peer: "10.0.0.9:1234", xff: []string{"10.0.0.8"}, want: "10.0.0.9"}, // too few: peer
		{hops: 1, peer: "10.0.0.9:1234", xff: nil, want: "10.0.0.9"},
		{hops: 1, peer: "10.0.0.9:1234", xff: []string{"6.6.6.6, junk"}, want: "10.0.0.9"},
		{hops: 1, peer: "10.0.0.9:1234", xff: []string{"[2001:db8::1]:443"}, want: "2001:db8::1"},
		{hops: 1, peer: "10.0.0.9:1234", xff: []string{"1.1.1.1:80"}, want: "1.1.1.1"},
		{hops: 0, peer: "[::ffff:10.0.0.9]:1234", want: "10.0.0.9"},
		{hops: 0, peer: "@", want: "invalid IP"},
	} {
		n := mustNew(t, normalize.Options{TrustedHops: tc.hops})
		h := http.Header{}
		for _, v := range tc.xff {
			h.Add("X-Forwarded-For", v)
		}
		r := request("/", "h", h)
		r.RemoteAddr = tc.peer
		res, err := n.Request(r)
		if err != nil {
			t.Fatal(err)
		}
		if res.ClientIP.String() != tc.want {
			t.Errorf("hops %d peer %s xff %q: %s, want %s", tc.hops, tc.peer, tc.xff, res.ClientIP, tc.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []normalize.Options{
		{SlashEncoding: 7},
		{PathParams: 3},
		{TrustedHops: -1},
		{TrustedHops: normalize.MaxTrustedHops + 1},
		{StripHeaders: []string{"bad header"}},
		{StripHeaders: []string{""}},
	} {
		if _, err := normalize.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// TestDenyAdmin sends path and host tricks over a real connection to a
// server that normalises, applies DENY host api.example path /admin (and
// below), and then serves the app. No variant may reach the app as the
// admin path; what the app sees is the canonical path.
func TestDenyAdmin(t *testing.T) {
	for _, mode := range []struct {
		name string
		o    normalize.Options
	}{
		{"reject", normalize.Options{}},
		{"decode", normalize.Options{SlashEncoding: normalize.SlashDecode}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			n := mustNew(t, mode.o)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				res, err := n.Request(r)
				if err != nil {
					var e *normalize.Error
					errors.As(err, &e)
					http.Error(w, e.Reason, e.Status)
					return
				}
				// The policy: segment-prefix match on the canonical path.
				if res.Host == "api.example" && (res.Path == "/admin" || strings.HasPrefix(res.Path, "/admin/")) {
					http.Error(w, "denied", http.StatusForbidden)
					return
				}
				// The app: it answers with the path it sees.
				fmt.Fprint(w, r.URL.EscapedPath())
			}))
			defer srv.Close()

			slashStatus := http.StatusBadRequest
			if mode.o.SlashEncoding == normalize.SlashDecode {
				slashStatus = http.StatusForbidden
			}
			for _, tc := range []struct {
				target, host string
				status       int
				app          string // path the app sees on 200
			}{
				{"/admin", "api.example", 403, ""},
				{"/admin/", "api.example", 403, ""},
				{"/admin/users", "api.example", 403, ""},
				{"//admin", "api.example", 403, ""},
				{"///admin/", "api.example", 403, ""},
				{"/./admin", "api.example", 403, ""},
				{"/x/../admin", "api.example", 403, ""},
				{"/x/./../admin", "api.example", 403, ""},
				{"/../admin", "api.example", 403, ""},
				{"/%2e%2e/admin", "api.example", 403, ""},
				{"/x/%2e%2e/admin", "api.example", 403, ""},
				{"/x/%2E%2E/admin", "api.example", 403, ""},
				{"/x/.%2e/admin", "api.example", 403, ""},
				{"/%61dmin", "api.example", 403, ""},
				{"/%61%64%6D%69%6E/", "api.example", 403, ""},
				{"/x/%2e%2e%2fadmin", "api.example", slashStatus, ""},
				{"/%2Fadmin", "api.example", slashStatus, ""},
				{"/%2fadmin", "api.example", slashStatus, ""},
				{"/x%2F..%2Fadmin", "api.example", slashStatus, ""},
				{"/%5Cadmin", "api.example", slashStatus, ""},
				{"/x%5C..%5Cadmin", "api.example", slashStatus, ""},
				{`/x\..\admin`, "api.example", slashStatus, ""},
				{"/x/..;/admin", "api.example", 400, ""},
				{"/x/..%3B/admin", "api.example", 400, ""},
				{"/%c0%ae%c0%ae/admin", "api.example", 400, ""},
				{"/admin%00", "api.example", 400, ""},
				{"/admin%00.html", "api.example", 400, ""},
				{"/admin#frag", "api.example", 400, ""},
				{"/admin%zz", "api.example", 400, ""},
				{"/admin", "API.EXAMPLE", 403, ""},
				{"/admin", "api.example.", 403, ""},
				{"/admin", "Api.Example.:80", 403, ""},
				{"/admin", "api.example:80", 403, ""},
				{"/admin", "api.example:0080", 403, ""},
				{"http://api.example/admin", "api.example", 403, ""},
				{"HTTP://API.EXAMPLE.:80//x/../admin", "API.EXAMPLE.:80", 403, ""},
				{"/admin", "api..example", 400, ""},
				// Not the admin path: the app sees the canonical form.
				{"/ADMIN", "api.example", 200, "/ADMIN"},
				{"/%252e%252e/admin", "api.example", 200, "/%252e%252e/admin"},
				{"/x/../public//a/./b", "api.example", 200, "/public/a/b"},
				{"/admin", "other.example", 200, "/admin"},
				{"/admin", "api.example:8080", 200, "/admin"},
			} {
				status, body := rawGet(t, srv.Listener.Addr().String(), tc.target, tc.host)
				if status != tc.status {
					t.Errorf("GET %s Host %s: status %d, want %d", tc.target, tc.host, status, tc.status)
					continue
				}
				if status == 200 && body != tc.app {
					t.Errorf("GET %s Host %s: app saw %q, want %q", tc.target, tc.host, body, tc.app)
				}
			}
		})
	}
}

// rawGet sends one request with the exact target and Host given.
func rawGet(t *testing.T, addr, target, host string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, b.String()
}
