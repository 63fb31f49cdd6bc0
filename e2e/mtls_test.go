package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type identityStatus struct {
	SPIFFEID   string            `json:"spiffeId"`
	Serial     string            `json:"serial"`
	NotAfter   time.Time         `json:"notAfter"`
	Rejections map[string]uint64 `json:"rejections"`
}

func (s *sidecar) identity(t *testing.T) identityStatus {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/identity")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st identityStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func mtlsPolicy(mode string) string {
	return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: MTLSPolicy
metadata: {name: reviews, namespace: shop}
spec:
  targetRef: {kind: Service, name: reviews}
  mode: %s
`, mode)
}

// TestPermissiveThenStrict: PERMISSIVE takes a plaintext client and a
// mesh (mTLS) client on one port; STRICT then refuses the plaintext one,
// counts it, and keeps serving the mesh client.
func TestPermissiveThenStrict(t *testing.T) {
	cp := newControlPlane(t)
	reviews := startBackend(t, "reviews")
	cp.apply(t, serviceYAML("reviews", "app: reviews", reviews.port(t))+mtlsPolicy("PERMISSIVE"))
	sc := startSidecar(t, cp, sidecarOpts{workload: "reviews-1", namespace: "shop", identity: "reviews", labels: []string{"app=reviews"}, appPort: reviews.port(t)})
	client := startSidecar(t, cp, sidecarOpts{workload: "web-1", namespace: "shop", identity: "web", labels: []string{"app=web"}})
	mesh := proxyClient(client)
	// A client outside the mesh talks plaintext HTTP to the inbound port.
	plain := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	inbound := "http://127.0.0.1:" + sc.inboundPort + "/"

	eventually(t, 15*time.Second, func() error {
		if code, who, body, err := get(plain, inbound, "reviews.shop"); err != nil || code != 200 || who != "reviews" {
			return fmt.Errorf("plaintext client: %d %q %v", code, body, err)
		}
		if code, who, body, err := get(mesh, "http://reviews.shop/", ""); err != nil || code != 200 || who != "reviews" {
			return fmt.Errorf("mesh client: %d %q %v", code, body, err)
		}
		return nil
	})
	if !edgeWasMTLS(t, client, "reviews.shop") {
		t.Fatal("the mesh client's hop was not mutual TLS")
	}
	// The server side saw both: plaintext, and mTLS from web's identity.
	var sawPlain, sawPeer bool
	for _, e := range inboundEdges(t, sc) {
		if !e.MTLS && e.Peer == "" {
			sawPlain = true
		}
		if e.MTLS && e.Peer == "spiffe://weft.local/ns/shop/sa/web" {
			sawPeer = true
		}
	}
	if !sawPlain || !sawPeer {
		t.Fatalf("inbound edges: plaintext seen %v, mTLS from web seen %v: %+v", sawPlain, sawPeer, inboundEdges(t, sc))
	}

	cp.apply(t, mtlsPolicy("STRICT"))
	eventually(t, 15*time.Second, func() error {
		if code, _, _, err := get(plain, inbound, "reviews.shop"); err == nil {
			return fmt.Errorf("plaintext client still served (%d)", code)
		}
		return nil
	})
	for range 20 {
		if code, who, body, err := get(mesh, "http://reviews.shop/", ""); err != nil || code != 200 || who != "reviews" {
			t.Fatalf("mesh client under STRICT: %d %q %v", code, body, err)
		}
	}
	if n := sc.identity(t).Rejections["plaintext"]; n == 0 {
		t.Fatal("plaintext on the STRICT port was not counted")
	}
}

type edge struct {
	Direction string `json:"direction"`
	Service   string `json:"service"`
	MTLS      bool   `json:"mtls"`
	Peer      string `json:"peer"`
	Requests  uint64 `json:"requests"`
}

func inboundEdges(t *testing.T, s *sidecar) []edge {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/stats/edges")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Edges []edge `json:"edges"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []edge
	for _, e := range body.Edges {
		if e.Direction == "inbound" {
			out = append(out, e)
		}
	}
	return out
}

func edgeWasMTLS(t *testing.T, s *sidecar, service string) bool {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/stats/edges")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Edges []struct {
			Service  string `json:"service"`
			MTLS     bool   `json:"mtls"`
			Requests uint64 `json:"requests"`
		} `json:"edges"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, e := range body.Edges {
		if e.Service == service && e.Requests > 0 {
			return e.MTLS
		}
	}
	return false
}

// load sends requests through a mesh client until stopped, counting
// failures.
type load struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	first        string
	stop         context.CancelFunc
	wg           sync.WaitGroup
}

func startLoad(c *http.Client, url string, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				l.sent.Add(1)
				code, _, body, err := get(c, url, "")
				if err != nil || code != 200 {
					l.failed.Add(1)
					l.mu.Lock()
					if l.first == "" {
						l.first = fmt.Sprintf("%d %q %v", code, body, err)
					}
					l.mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	if l.failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed; first: %s", l.failed.Load(), l.sent.Load(), l.first)
	}
	t.Logf("%d requests, 0 failed", l.sent.Load())
}

// TestCertificateAndRootRotationUnderLoad: with 12 s certificates the
// proxies renew several times, then the root is rotated and retired, all
// under continuous load without a failed request.
func TestCertificateAndRootRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("long: waits for several certificate renewals")
	}
	cp := newControlPlane(t, "--workload-cert-ttl", "12s")
	reviews := startBackend(t, "reviews")
	cp.apply(t, serviceYAML("reviews", "app: reviews", reviews.port(t)))
	server := startSidecar(t, cp, sidecarOpts{workload: "reviews-1", namespace: "shop", identity: "reviews", labels: []string{"app=reviews"}, appPort: reviews.port(t)})
	client := startSidecar(t, cp, sidecarOpts{workload: "web-1", namespace: "shop", identity: "web", labels: []string{"app=web"}})
	c := proxyClient(client)
	eventually(t, 15*time.Second, func() error {
		if code, _, body, err := get(c, "http://reviews.shop/", ""); err != nil || code != 200 {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	l := startLoad(c, "http://reviews.shop/", 4)

	// Certificate rotation: both proxies renew (new serials) while serving.
	firstServer, firstClient := server.identity(t).Serial, client.identity(t).Serial
	eventually(t, 20*time.Second, func() error {
		if server.identity(t).Serial == firstServer || client.identity(t).Serial == firstClient {
			return fmt.Errorf("not renewed yet")
		}
		return nil
	})

	// Root rotation: a new root joins the bundle and issues; once every
	// workload holds a certificate from it, the old root is dropped.
	out, err := cp.weft(t, "", "ca", "rotate")
	if err != nil {
		t.Fatalf("weft ca rotate: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, func() error {
		out, err := cp.weft(t, "", "ca", "rotate", "--finish")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	status, _ := cp.weft(t, "", "ca", "status")
	if strings.Count(status, "trusted") != 1 {
		t.Fatalf("after the rotation one root should be trusted:\n%s", status)
	}
	// Traffic keeps flowing on certificates from the new root only.
	newRoot := strings.Fields(strings.SplitN(status, "issuing root:", 2)[1])[0]
	before := l.sent.Load()
	eventually(t, 20*time.Second, func() error {
		if l.sent.Load() < before+100 {
			return fmt.Errorf("load stalled")
		}
		return nil
	})
	certs, err := cp.weft(t, "", "certs")
	if err != nil || !strings.Contains(certs, "reviews-1") || !strings.Contains(certs, "web-1") || !strings.Contains(certs, "(issuing)") {
		t.Fatalf("weft certs: %v\n%s", err, certs)
	}
	_ = newRoot
	l.finish(t)
}

// TestJoinRefused: a proxy whose token does not grant the identity it
// asks for, or is revoked, or expired, gets no certificate, never becomes
// ready, never starts its app, and the control plane counts the refusal.
func TestJoinRefused(t *testing.T) {
	cp := newControlPlane(t)
	tokenFor := func(identity string) (string, string) {
		args := cp.joinArgs(t, "shop", identity)
		return args[1], args[3]
	}
	granted, pin := tokenFor("catalog")
	revoked, _ := tokenFor("reviews")
	list, err := cp.weft(t, "", "token", "list")
	if err != nil {
		t.Fatal(err)
	}
	var revokedID string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "reviews") {
			revokedID = strings.Fields(line)[0]
		}
	}
	if out, err := cp.weft(t, "", "token", "revoke", revokedID); err != nil {
		t.Fatalf("revoke: %v %s", err, out)
	}
	out, err := cp.weft(t, "", "token", "create", "--namespace", "shop", "--identity", "web", "--ttl", "1s", "-q")
	if err != nil {
		t.Fatal(err)
	}
	expired := strings.TrimSpace(out)
	time.Sleep(1500 * time.Millisecond)

	for _, tc := range []struct {
		name, identity, token, want string
	}{
		{"identity not granted", "payments", granted, "the caller may only have spiffe://weft.local/ns/shop/sa/catalog"},
		{"revoked token", "reviews", revoked, "revoked"},
		{"expired token", "web", expired, "expired"},
		{"garbage token", "web", "weft1.nope", "401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(proxyBin, "--control-plane", cp.xds, "--issuer", cp.issuer, "--workload", "x-1", "--namespace", "shop",
				"--identity", tc.identity, "--token", tc.token, "--ca-pin", pin,
				"--admin", freeAddr(t), "--outbound", freeAddr(t), "--ready-timeout", "4s", "--", "sh", "-c", "echo APP-STARTED")
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want 1\n%s", err, out)
			}
			if strings.Contains(string(out), "APP-STARTED") || !strings.Contains(string(out), tc.want) {
				t.Fatalf("want %q and no app start in:\n%s", tc.want, out)
			}
		})
	}
}

// TestWrongPinRefused: a proxy pinned to another CA refuses the control
// plane (no trust on first use).
func TestWrongPinRefused(t *testing.T) {
	cp := newControlPlane(t)
	args := cp.joinArgs(t, "shop", "catalog")
	cmd := exec.Command(proxyBin, "--control-plane", cp.xds, "--issuer", cp.issuer, "--workload", "x-1", "--namespace", "shop",
		"--identity", "catalog", "--token", args[1], "--ca-pin", "sha256:"+strings.Repeat("0f", 32),
		"--admin", freeAddr(t), "--outbound", freeAddr(t), "--ready-timeout", "3s")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "matches --ca-pin") {
		t.Fatalf("the proxy did not refuse an unpinned control plane:\n%s", out)
	}
	st, _ := cp.weft(t, "", "ca", "status")
	if strings.Contains(st, "issued: 1") {
		t.Fatalf("a certificate was issued to a proxy that could not verify the control plane:\n%s", st)
	}
}

// TestJoinWithBundleFile: a proxy can authenticate the control plane with
// a bundle file instead of a pin.
func TestJoinWithBundleFile(t *testing.T) {
	cp := newControlPlane(t)
	args := cp.joinArgs(t, "shop", "catalog")
	p := start(t, "weft-proxy bundle", proxyBin, "--control-plane", cp.xds, "--issuer", cp.issuer, "--workload", "catalog-1",
		"--namespace", "shop", "--identity", "catalog", "--token", args[1], "--ca-bundle", cp.dataDir+"/ca/bundle.crt",
		"--admin", freeAddr(t), "--outbound", freeAddr(t))
	eventually(t, 20*time.Second, func() error {
		if !strings.Contains(p.output(), "proxy ready") {
			return fmt.Errorf("not ready")
		}
		return nil
	})
}
