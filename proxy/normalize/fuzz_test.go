package normalize_test

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/weftmesh/weft/proxy/normalize"
)

var update = flag.Bool("update", false, "rewrite the seed corpus under testdata/fuzz")

// requestSeeds are the checked-in seed corpus of FuzzRequest: request
// target, Host, X-Forwarded-For, options bits.
var requestSeeds = []struct {
	target, host, xff string
	mode              uint8
}{
	{"/admin", "api.example", "", 0},
	{"//admin", "api.example.", "", 0},
	{"/./admin", "API.EXAMPLE:80", "", 0},
	{"/x/../admin", "api.example", "1.1.1.1", 8},
	{"/%2e%2e/admin", "api.example", "", 0},
	{"/x/%2e%2e%2fadmin", "api.example", "", 1},
	{"/%2Fadmin", "api.example", "", 1},
	{"/%5Cadmin", "api.example", "", 3},
	{`/x\..\admin`, "api.example", "", 1},
	{"/x/..;/admin", "api.example", "", 0},
	{"/admin;jsessionid=1", "api.example", "", 4},
	{"/%c0%ae%c0%ae/admin", "api.example", "", 0},
	{"/%252e%252e/admin", "api.example", "", 0},
	{"/caf%c3%a9/a%20b/%7e", "[2001:DB8::1]:8080", "6.6.6.6, [::1]:80", 16},
	{"/admin%00", "api.example", "", 0},
	{"/admin#x", "api.example", "", 0},
	{"http://API.example.:80//a/./b/../c?q=1", "api.example", "", 2},
	{"/a?%00", "h:443", "", 0},
	{"/a/b/..", "h:0080", "1.1.1.1,2.2.2.2", 16},
}

func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRequest")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range requestSeeds {
			body := fmt.Sprintf("go test fuzz v1\nstring(%s)\nstring(%s)\nstring(%s)\nbyte(%s)\n",
				strconv.Quote(s.target), strconv.Quote(s.host), strconv.Quote(s.xff), strconv.QuoteRune(rune(s.mode)))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) < len(requestSeeds) {
		t.Fatalf("seed corpus %s: %d files, %v (run go test -run TestFuzzSeeds -update)", dir, len(entries), err)
	}
}

// FuzzRequest checks the invariants of the canonical form on any request
// target and Host: no panic; a rejection is a 400 *Error and leaves the
// request alone; an accepted path starts with '/', has no dot segments,
// no %2F or %5C, no empty segment when merging, agrees with what a Go
// server parses from the forwarded request URI, and normalising the
// result again changes nothing.
func FuzzRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(s.target, s.host, s.xff, s.mode)
	}
	f.Fuzz(func(t *testing.T, target, host, xff string, mode uint8) {
		o := normalize.Options{
			SlashEncoding:     normalize.SlashEncoding(mode & 1),
			KeepEmptySegments: mode&2 != 0,
			PathParams:        normalize.PathParams(mode >> 2 & 1),
			TrustedHops:       int(mode>>3) % 4,
		}
		n, err := normalize.New(o)
		if err != nil {
			t.Fatal(err)
		}
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{}, RequestURI: target, Host: host,
			Header: http.Header{"X-Forwarded-For": {xff}}, RemoteAddr: "10.0.0.1:5000"}
		res, err := n.Request(r)
		if err != nil {
			var e *normalize.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("error %v is not a 400 *Error", err)
			}
			if r.RequestURI != target || r.Host != host {
				t.Fatal("rejected request was modified")
			}
			return
		}
		p := res.Path
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("path %q does not start with /", p)
		}
		if !o.KeepEmptySegments && strings.Contains(p, "//") {
			t.Fatalf("path %q has an empty segment", p)
		}
		for seg := range strings.SplitSeq(p[1:], "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("path %q has a dot segment", p)
			}
		}
		up := strings.ToUpper(p)
		if strings.Contains(up, "%2F") || strings.Contains(up, "%5C") || strings.ContainsAny(p, "\\#?\x00") {
			t.Fatalf("path %q has an encoded separator or a forbidden byte", p)
		}
		if r.URL.EscapedPath() != p || r.URL.RawPath != p {
			t.Fatalf("URL escaped path %q, raw %q, want %q", r.URL.EscapedPath(), r.URL.RawPath, p)
		}
		// What a Go upstream parses from the forwarded request.
		u, err := url.ParseRequestURI(r.URL.RequestURI())
		if err != nil {
			t.Fatalf("upstream cannot parse %q: %v", r.URL.RequestURI(), err)
		}
		if u.EscapedPath() != p || u.Path != r.URL.Path {
			t.Fatalf("upstream sees %q (%q), want %q (%q)", u.EscapedPath(), u.Path, p, r.URL.Path)
		}
		if !o.KeepEmptySegments {
			if c := path.Clean(u.Path); c != strings.TrimSuffix(u.Path, "/") && c != u.Path {
				t.Fatalf("decoded path %q is not clean (%q)", u.Path, c)
			}
		}
		if res.Host != r.Host || r.Host == "" || res.Host != strings.ToLower(res.Host) || strings.HasSuffix(res.Host, ".") {
			t.Fatalf("host %q / %q", res.Host, r.Host)
		}
		// Idempotent.
		r2 := &http.Request{Method: http.MethodGet, URL: &url.URL{}, RequestURI: r.RequestURI, Host: r.Host,
			Header: r.Header.Clone(), RemoteAddr: "10.0.0.1:5000", TLS: r.TLS}
		res2, err := n.Request(r2)
		if err != nil {
			t.Fatalf("normalising %q %q again: %v", r.RequestURI, r.Host, err)
		}
		if res2.Path != p || res2.Host != res.Host || r2.RequestURI != r.RequestURI || res2.ClientIP != res.ClientIP {
			t.Fatalf("not idempotent: %q %q -> %q %q", p, res.Host, res2.Path, res2.Host)
		}
	})
}
