package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// authzOut is an io.Writer safe for the command's goroutine and the test.
type authzOut struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *authzOut) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *authzOut) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

func TestAuthzServerCommand(t *testing.T) {
	dir := t.TempDir()
	policy := "package weft.authz\n\nallow if input.source.namespace == \"shop\"\n"
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &authzOut{}
	g := &globals{out: out, errOut: io.Discard}
	cmd := newAuthzServerCmd(g)
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--policy", dir, "--metrics-addr", "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("authz-server: %v", err)
		}
	}()

	addr := regexp.MustCompile(`gRPC:\s+(\S+)`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		if m = addr.FindStringSubmatch(out.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no ready banner:\n%s", out)
		}
	}
	if !strings.Contains(out.String(), "authz.rego") || !strings.Contains(out.String(), "metrics: http://127.0.0.1:") {
		t.Errorf("banner:\n%s", out)
	}
	conn, err := grpc.NewClient(m[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	for principal, want := range map[string]codes.Code{
		"spiffe://weft.local/ns/shop/sa/web":  codes.OK,
		"spiffe://weft.local/ns/other/sa/web": codes.PermissionDenied,
	} {
		resp, err := client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source:  &authv3.AttributeContext_Peer{Principal: principal},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/"}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if got := codes.Code(resp.GetStatus().GetCode()); got != want {
			t.Errorf("%s: %v, want %v", principal, got, want)
		}
	}
}

func TestAuthzServerCommandFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--policy", "x.rego", "--log-level", "loud"},
		{"--policy", "x.rego", "--tls-cert", "a.pem"},
		{"--policy", "x.rego", "--listen", "0.0.0.0:0"},
	} {
		cmd := newAuthzServerCmd(&globals{out: io.Discard, errOut: io.Discard})
		cmd.SetArgs(args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.Execute(); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
