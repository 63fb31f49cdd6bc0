package authzserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const adminID = "spiffe://weft.local/ns/shop/sa/admin"

func examplePolicy(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const brokenPolicy = `package weft.authz

allow if {
	input.attributes.request.http.method == 
}
`

const slowPolicy = `package weft.authz

default allow := false

allow if {
	some a in numbers.range(1, 5000)
	some b in numbers.range(1, 5000)
	some c in numbers.range(1, 5000)
	a + b + c < 0
}
`

// writePolicy writes src as DIR/authz.rego and returns DIR.
func writePolicy(t testing.TB, dir, src string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// logBuffer collects a Server's log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start runs the server (Run, as weft authz-server does) on loopback and
// returns a client of it.
func start(t testing.TB, o RunOptions) (authv3.AuthorizationClient, *grpc.ClientConn) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Ready, 1)
	o.Ready = func(r Ready) { ready <- r }
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	var r Ready
	select {
	case r = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	conn, err := grpc.NewClient(r.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return authv3.NewAuthorizationClient(conn), conn
}

func checkRequest(method, path, principal string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{":authority": "catalog.shop", ":method": method, ":path": path}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.66.4", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000},
			}}},
			Principal: principal,
		},
		Destination: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.66.2", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15006},
			}}},
			Principal: "spiffe://weft.local/ns/shop/sa/catalog",
		},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: method, Path: path, Host: "catalog.shop", Scheme: "http", Protocol: "HTTP/1.1",
			Headers: h,
		}},
	}}
}

func TestCheckExamplePolicy(t *testing.T) {
	dir := writePolicy(t, "", examplePolicy(t))
	client, _ := start(t, RunOptions{Options: Options{Policy: []string{dir}}})
	admin := map[string]string{"x-role": "admin"}
	tests := []struct {
		name      string
		method    string
		path      string
		principal string
		headers   map[string]string
		allowed   bool
	}{
		{"public GET anonymous", "GET", "/public", "", nil, true},
		{"public GET nested with query", "GET", "/public/items?page=2", "spiffe://weft.local/ns/shop/sa/web", nil, true},
		{"public POST", "POST", "/public", adminID, admin, false},
		{"admin with identity and header", "GET", "/admin", adminID, admin, true},
		{"admin POST with identity and header", "POST", "/admin/users", adminID, admin, true},
		{"admin without header", "GET", "/admin", adminID, nil, false},
		{"admin wrong header value", "GET", "/admin", adminID, map[string]string{"x-role": "user"}, false},
		{"admin other identity", "GET", "/admin", "spiffe://weft.local/ns/shop/sa/web", admin, false},
		{"admin other trust domain", "GET", "/admin", "spiffe://evil.local/ns/shop/sa/admin", admin, false},
		{"admin no identity", "GET", "/admin", "", admin, false},
		{"admin path prefix trick", "GET", "/administrator", adminID, admin, false},
		{"other path", "GET", "/private", adminID, admin, false},
		{"root", "GET", "/", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Check(context.Background(), checkRequest(tt.method, tt.path, tt.principal, tt.headers))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			assertAllowed(t, resp, tt.allowed)
		})
	}
}

func assertAllowed(t *testing.T, resp *authv3.CheckResponse, want bool) {
	t.Helper()
	got := codes.Code(resp.GetStatus().GetCode())
	if want {
		if got != codes.OK || resp.GetOkResponse() == nil {
			t.Fatalf("want allowed, got status %v, response %v", got, resp)
		}
		return
	}
	if got != codes.PermissionDenied {
		t.Fatalf("want PERMISSION_DENIED, got %v", got)
	}
	d := resp.GetDeniedResponse()
	if d == nil || d.GetStatus().GetCode() != 403 || d.GetBody() != "" {
		t.Fatalf("want a 403 denied response without body, got %v", d)
	}
}

func TestDecisionObject(t *testing.T) {
	dir := writePolicy(t, "", `package weft.authz

default response := {"allowed": false, "http_status": 401, "body": "login first",
	"headers": {"www-authenticate": "Bearer"}}

response := {
	"allowed": true,
	"headers": {"x-weft-caller": input.source.service_account, "x-multi": ["a", "b"]},
	"request_headers_to_remove": ["authorization"],
	"response_headers_to_add": {"x-authz": "weft"},
	"dynamic_metadata": {"caller": input.source.spiffe_id, "n": 1},
} if input.source.namespace == "shop"
`)
	client, _ := start(t, RunOptions{Options: Options{Policy: []string{dir}, Query: "data.weft.authz.response"}})

	resp, err := client.Check(context.Background(), checkRequest("GET", "/x", "spiffe://weft.local/ns/shop/sa/web", nil))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || ok == nil {
		t.Fatalf("want allowed, got %v", resp)
	}
	var hs []string
	for _, h := range ok.GetHeaders() {
		hs = append(hs, h.GetHeader().GetKey()+"="+h.GetHeader().GetValue()+":"+h.GetAppendAction().String())
	}
	want := []string{
		"x-multi=a:OVERWRITE_IF_EXISTS_OR_ADD", "x-multi=b:APPEND_IF_EXISTS_OR_ADD",
		"x-weft-caller=web:OVERWRITE_IF_EXISTS_OR_ADD",
	}
	if strings.Join(hs, " ") != strings.Join(want, " ") {
		t.Errorf("headers = %v, want %v", hs, want)
	}
	if got := ok.GetHeadersToRemove(); len(got) != 1 || got[0] != "authorization" {
		t.Errorf("headers to remove = %v", got)
	}
	if got := ok.GetResponseHeadersToAdd(); len(got) != 1 || got[0].GetHeader().GetValue() != "weft" {
		t.Errorf("response headers = %v", got)
	}
	if got := resp.GetDynamicMetadata().GetFields()["caller"].GetStringValue(); got != "spiffe://weft.local/ns/shop/sa/web" {
		t.Errorf("dynamic metadata caller = %q", got)
	}

	resp, err = client.Check(context.Background(), checkRequest("GET", "/x", "spiffe://weft.local/ns/other/sa/web", nil))
	if err != nil {
		t.Fatal(err)
	}
	d := resp.GetDeniedResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || d.GetStatus().GetCode() != 401 ||
		d.GetBody() != "login first" || len(d.GetHeaders()) != 1 || d.GetHeaders()[0].GetHeader().GetKey() != "www-authenticate" {
		t.Fatalf("want a 401 with body and header, got %v", resp)
	}
}

func TestBadDecisionIsAnError(t *testing.T) {
	tests := map[string]string{
		"string":           `response := "yes"`,
		"no allowed":       `response := {"headers": {}}`,
		"allowed a string": `response := {"allowed": "true"}`,
		"bad status":       `response := {"allowed": false, "http_status": 42}`,
		"bad header":       `response := {"allowed": true, "headers": {"a": 1}}`,
		"conflict":         "response := true\nresponse := false if true",
	}
	for name, rule := range tests {
		t.Run(name, func(t *testing.T) {
			dir := writePolicy(t, "", "package weft.authz\n\n"+rule+"\n")
			client, _ := start(t, RunOptions{Options: Options{Policy: []string{dir}, Query: "data.weft.authz.response"}})
			resp, err := client.Check(context.Background(), checkRequest("GET", "/", "", nil))
			if status.Code(err) != codes.Internal {
				t.Fatalf("want INTERNAL, got %v, %v", resp, err)
			}
		})
	}
}

func TestCompileErrorAtStartDeniesAll(t *testing.T) {
	logs := &logBuffer{}
	dir := writePolicy(t, "", brokenPolicy)
	client, conn := start(t, RunOptions{Options: Options{
		Policy: []string{dir},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}})
	for _, path := range []string{"/public", "/admin"} {
		resp, err := client.Check(context.Background(), checkRequest("GET", path, adminID, map[string]string{"x-role": "admin"}))
		if err != nil {
			t.Fatal(err)
		}
		assertAllowed(t, resp, false)
	}
	if !strings.Contains(logs.String(), "EVERY REQUEST IS DENIED") {
		t.Errorf("no loud log line:\n%s", logs)
	}
	h, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: ServiceName})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health = %v, %v; want NOT_SERVING", h, err)
	}
}

func TestMissingQueryRuleIsAnError(t *testing.T) {
	dir := writePolicy(t, "", "package weft.other\n\nallow := true\n")
	s, err := New(Options{Policy: []string{dir}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if s.Policy() != nil || s.LoadError() == nil || !strings.Contains(s.LoadError().Error(), "data.weft.authz.allow") {
		t.Fatalf("policy %v, error %v: want refused for defining nothing at the query", s.Policy(), s.LoadError())
	}
	// A data document may answer the query.
	dir = t.TempDir()
	writePolicy(t, dir, "package weft.other\n\nx := 1\n")
	os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"weft": {"authz": {"allow": true}}}`), 0o644)
	s, _ = New(Options{Policy: []string{dir}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if s.LoadError() != nil {
		t.Fatal(s.LoadError())
	}
	resp, err := s.Check(context.Background(), checkRequest("GET", "/", "", nil))
	if err != nil {
		t.Fatal(err)
	}
	assertAllowed(t, resp, true)
}

func TestReloadGoodToBadKeepsGood(t *testing.T) {
	logs := &logBuffer{}
	dir := writePolicy(t, "", examplePolicy(t))
	s, err := New(Options{Policy: []string{dir}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	allowed := func(path string) bool {
		t.Helper()
		resp, err := s.Check(ctx, checkRequest("GET", path, "", nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus().GetCode() == int32(codes.OK)
	}
	if !allowed("/public") {
		t.Fatal("good policy: /public denied")
	}

	writePolicy(t, dir, brokenPolicy)
	if err := s.Reload(ctx); err == nil {
		t.Fatal("reload of a broken policy succeeded")
	}
	if !allowed("/public") || allowed("/private") {
		t.Fatal("the last good policy is not serving")
	}
	if !strings.Contains(logs.String(), "the last good policy keeps serving") {
		t.Errorf("no loud log line:\n%s", logs)
	}
	if got := s.Stats().ReloadError.Load(); got != 1 {
		t.Errorf("reload errors = %d, want 1", got)
	}
	// Unchanged files are not compiled again (nor logged again).
	_ = s.Reload(ctx)
	if got := s.Stats().ReloadError.Load(); got != 1 {
		t.Errorf("reload errors after an idle poll = %d, want 1", got)
	}

	// A fixed policy replaces it.
	writePolicy(t, dir, "package weft.authz\n\nallow if input.parsed_path[0] == \"private\"\n")
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if allowed("/public") || !allowed("/private") {
		t.Fatal("the new policy is not serving")
	}
}

func TestWatchReloads(t *testing.T) {
	dir := writePolicy(t, "", brokenPolicy)
	client, _ := start(t, RunOptions{Watch: true, Options: Options{Policy: []string{dir}, WatchInterval: 20 * time.Millisecond}})
	req := checkRequest("GET", "/public", "", nil)
	resp, err := client.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertAllowed(t, resp, false)
	writePolicy(t, dir, examplePolicy(t))
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus().GetCode() == int32(codes.OK) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the fixed policy was not picked up by --watch")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEvaluationTimeout(t *testing.T) {
	dir := writePolicy(t, "", slowPolicy)
	client, _ := start(t, RunOptions{Options: Options{Policy: []string{dir}, DecisionTimeout: 50 * time.Millisecond}})
	start := time.Now()
	resp, err := client.Check(context.Background(), checkRequest("GET", "/public", "", nil))
	took := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("want DEADLINE_EXCEEDED, got %v, %v", resp, err)
	}
	if took > 2*time.Second {
		t.Errorf("the evaluation was not cut at its budget: took %v", took)
	}
}

func TestMaxRequestBytes(t *testing.T) {
	dir := writePolicy(t, "", "package weft.authz\n\nallow := true\n")
	client, _ := start(t, RunOptions{Options: Options{Policy: []string{dir}, MaxRequestBytes: 4096}})
	resp, err := client.Check(context.Background(), checkRequest("GET", "/", "", nil))
	if err != nil {
		t.Fatal(err)
	}
	assertAllowed(t, resp, true)
	resp, err = client.Check(context.Background(), checkRequest("GET", "/", "", map[string]string{"x-big": strings.Repeat("a", 5000)}))
	if err != nil {
		t.Fatal(err)
	}
	assertAllowed(t, resp, false)
}

func TestHealthAndPlaintextGuard(t *testing.T) {
	dir := writePolicy(t, "", examplePolicy(t))
	_, conn := start(t, RunOptions{Options: Options{Policy: []string{dir}}})
	h, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: ServiceName})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, %v; want SERVING", h, err)
	}
	err = Run(context.Background(), RunOptions{Listen: "0.0.0.0:0", Options: Options{Policy: []string{dir}}})
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("plaintext on 0.0.0.0: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	dir := writePolicy(t, "", examplePolicy(t))
	s, err := New(Options{Policy: []string{dir}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.Check(context.Background(), checkRequest("GET", "/public", "", nil))
	s.Check(context.Background(), checkRequest("GET", "/admin", "", nil))
	var b bytes.Buffer
	s.writeMetrics(&b)
	for _, want := range []string{
		`weft_authz_checks_total{decision="allow"} 1`,
		`weft_authz_checks_total{decision="deny"} 1`,
		`weft_authz_check_duration_milliseconds_count 2`,
		`weft_authz_policy_reloads_total{result="ok"} 1`,
		"weft_authz_policy_loaded 1",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

// BenchmarkCheck measures a whole Check over gRPC on loopback (one client
// connection, sequential) with the example policy, and reports p50/p99.
func BenchmarkCheck(b *testing.B) {
	dir := writePolicy(b, "", examplePolicy(b))
	client, _ := start(b, RunOptions{Options: Options{Policy: []string{dir}}})
	req := checkRequest("GET", "/admin/users?page=2", adminID, map[string]string{"x-role": "admin", "user-agent": "bench"})
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		resp, err := client.Check(context.Background(), req)
		lat = append(lat, time.Since(t0))
		if err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatal(resp, err)
		}
	}
	reportPercentiles(b, lat)
}

// BenchmarkDecide measures the server side alone: input document and
// evaluation, no gRPC.
func BenchmarkDecide(b *testing.B) {
	dir := writePolicy(b, "", examplePolicy(b))
	s, err := New(Options{Policy: []string{dir}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	req := checkRequest("GET", "/admin/users?page=2", adminID, map[string]string{"x-role": "admin", "user-agent": "bench"})
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		resp, err := s.Check(context.Background(), req)
		lat = append(lat, time.Since(t0))
		if err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatal(resp, err)
		}
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-µs")
}
