package authzserver

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestInputGolden pins the input document (OPA-Envoy's shape plus
// input.source) for a full request.
func TestInputGolden(t *testing.T) {
	req := checkRequest("POST", "/admin/users%2Fx/?page=2&tag=a&tag=b", adminID, map[string]string{
		"content-type": "application/json", "x-role": "admin",
	})
	h := req.Attributes.Request.Http
	h.Body = `{"name": "ann", "n": 1}`
	h.Size = 23
	req.Attributes.Request.Time = timestamppb.New(mustTime(t))
	req.Attributes.ContextExtensions = map[string]string{"policy": "shop/admin"}
	md, _ := structpb.NewStruct(map[string]any{"route": "r1"})
	req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"weft": md}}

	v, err := Input(req)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	var doc any
	if doc, err = ast.JSON(v); err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(&got)
	enc.SetIndent("", "  ")
	enc.Encode(doc) // sorted keys: stable
	const golden = "testdata/input.golden.json"
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("input document differs from %s (go test -update to accept):\n%s", golden, got.String())
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct{ path, segs, query string }{
		{"/", `[""]`, `{}`},
		{"", `[""]`, `{}`},
		{"/public", `["public"]`, `{}`},
		{"/a/b/", `["a", "b", ""]`, `{}`},
		{"/a%20b?x=1&x=2&y", `["a b"]`, `{"x": ["1", "2"], "y": [""]}`},
		{"/a?q=%zz", `["a"]`, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			segs, query, err := parsePath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if segs.String() != tt.segs || query.String() != tt.query {
				t.Errorf("parsePath(%q) = %v %v, want %v %v", tt.path, segs, query, tt.segs, tt.query)
			}
		})
	}
	if _, _, err := parsePath("/%zz"); err == nil {
		t.Error("a bad escape parsed")
	}
}

func TestWeftSource(t *testing.T) {
	tests := []struct{ principal, want string }{
		{"", `{}`},
		{"not-a-spiffe-id", `{"principal": "not-a-spiffe-id"}`},
		{"spiffe://weft.local/ns/shop/sa/admin", `{"namespace": "shop", "principal": "spiffe://weft.local/ns/shop/sa/admin", "service_account": "admin", "spiffe_id": "spiffe://weft.local/ns/shop/sa/admin", "trust_domain": "weft.local"}`},
		{"spiffe://other.org/workload", `{"principal": "spiffe://other.org/workload", "spiffe_id": "spiffe://other.org/workload", "trust_domain": "other.org"}`},
	}
	for _, tt := range tests {
		if got := weftSource(tt.principal).String(); got != tt.want {
			t.Errorf("weftSource(%q) = %s, want %s", tt.principal, got, tt.want)
		}
	}
}

func TestPartialBody(t *testing.T) {
	req := checkRequest("POST", "/", "", map[string]string{"content-type": "application/json", "x-envoy-auth-partial-body": "true"})
	req.Attributes.Request.Http.Body = `{"cut`
	v, err := Input(req)
	if err != nil {
		t.Fatal(err)
	}
	obj := v.(ast.Object)
	if tb := obj.Get(ast.StringTerm("truncated_body")); tb == nil || tb.String() != "true" {
		t.Errorf("truncated_body = %v", tb)
	}
}

// FuzzInput: whatever a caller sends, building the input never panics and
// yields valid JSON.
func FuzzInput(f *testing.F) {
	f.Add("/public?x=1", "application/json", `{"a": [1, 2]}`, "spiffe://weft.local/ns/a/sa/b")
	f.Add("/%zz", "", "", "")
	f.Add("//a//b?&&=", "application/json", `{"cut`, "spiffe://")
	f.Fuzz(func(t *testing.T, path, ct, body, principal string) {
		for _, s := range []string{path, ct, body, principal} {
			if !utf8.ValidString(s) {
				return // protobuf refuses a string field that is not UTF-8
			}
		}
		req := checkRequest("GET", path, principal, map[string]string{"content-type": ct})
		req.Attributes.Request.Http.Body = body
		v, err := Input(req)
		if err != nil {
			return
		}
		doc, err := ast.JSON(v)
		if err != nil {
			t.Fatalf("input is not JSON: %v: %s", err, v)
		}
		if _, err := json.Marshal(doc); err != nil {
			t.Fatalf("input is not JSON: %v: %s", err, v)
		}
	})
}

func mustTime(t *testing.T) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, "2026-05-01T12:00:00.5Z")
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
