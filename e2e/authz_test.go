package e2e

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// End-to-end authorization (issue 6): AuthorizationPolicy,
// RequestAuthentication and MeshConfig.spec.authorization, enforced by the
// destination's sidecar on the normalised request. Every test starts its
// own control plane, one app behind a sidecar and client sidecars of
// several identities, all real processes.

const trustDomain = "weft.local"

func spiffe(ns, sa string) string { return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa }

// authzApp is an app that records every path it was asked for and echoes
// what authorization may have changed.
type authzApp struct {
	addr  string
	mu    sync.Mutex
	paths []string
}

func startAuthzApp(t *testing.T) *authzApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &authzApp{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.paths = append(a.paths, r.RequestURI)
		a.mu.Unlock()
		w.Header().Set("x-backend", "app")
		fmt.Fprintf(w, "uri=%s host=%s x-user=%s x-authz-user=%s authorization=%s", r.RequestURI, r.Host,
			r.Header.Get("x-user"), r.Header.Get("x-authz-user"), r.Header.Get("authorization"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

func (a *authzApp) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...)
}

func (a *authzApp) reset() {
	a.mu.Lock()
	a.paths = nil
	a.mu.Unlock()
}

func (a *authzApp) port(t *testing.T) string { return portOf(t, a.addr) }

// clientOf starts a client sidecar of identity ns/sa and returns an HTTP
// client that sends through it.
func clientOf(t *testing.T, cp *controlPlane, ns, sa string, upstreams ...string) (*sidecar, *http.Client) {
	s := startSidecar(t, cp, sidecarOpts{workload: sa + "-client", namespace: ns, identity: sa, upstreams: upstreams})
	return s, proxyClient(s)
}

// do sends one request and returns its result.
func do(c *http.Client, method, url string, headers ...string) result {
	req := getReq(url, headers...)
	req.Method = method
	return send(c, 1, 1, func(int) *http.Request { return req })[0]
}

// expect waits until url answers want to c (policies reach the proxies
// asynchronously), then checks it keeps doing so.
func expect(t *testing.T, c *http.Client, url string, want int, headers ...string) result {
	t.Helper()
	var r result
	waitFor(t, fmt.Sprintf("GET %s %v → %d", url, headers, want), 15*time.Second, func() error {
		r = do(c, http.MethodGet, url, headers...)
		if r.err != nil {
			return r.err
		}
		if r.code != want {
			return fmt.Errorf("got %d %q (x-weft-error %q)", r.code, r.body, r.header.Get("x-weft-error"))
		}
		return nil
	})
	return r
}

// metricSum is the sum of a family's samples whose labels contain match.
func metricSum(t *testing.T, s *sidecar, family string, match map[string]string) float64 {
	var sum float64
outer:
	for _, se := range scrape(t, s, family) {
		for k, v := range match {
			if !strings.Contains(se.labels[k], v) {
				continue outer
			}
		}
		sum += se.value
	}
	return sum
}

const meshDenyYAML = `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: weft-system}
spec:
  authorization: {defaultAction: DENY}
---
`

// TestAuthzPolicies: a default-deny mesh where only listed identities
// reach listed paths; DENY overriding ALLOW; namespace and IP-block
// rules; AUDIT logging without blocking; gRPC denials; network RBAC on a
// TCP service.
func TestAuthzPolicies(t *testing.T) {
	cp := newControlPlane(t)
	app := startAuthzApp(t)
	db := startEcho(t)
	cp.apply(t, meshDenyYAML+serviceYAML("catalog", "app: catalog", app.port(t))+`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports: [{port: 5432, targetPort: `+portOf(t, db)+`, protocol: TCP}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-readers, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["`+spiffe("shop", "web")+`"]}}]
    to: [{operation: {methods: [GET], paths: ["/items", "/items/*"]}}]
  - from: [{source: {namespaces: [shop]}}]
    to: [{operation: {paths: ["/public/*"]}}]
  - from: [{source: {ipBlocks: ["127.0.0.0/8"]}}]
    to: [{operation: {paths: ["/loopback/*"]}}]
  - from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]
    to: [{operation: {paths: ["/ten/*"]}}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-secrets, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/items/secret"]}}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: audit-items, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  action: AUDIT
  rules:
  - to: [{operation: {paths: ["/items/audited"]}}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: db-web-only, namespace: shop}
spec:
  targetRef: {kind: Service, name: db}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["`+spiffe("shop", "web")+`"]}}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: db-audit, namespace: shop}
spec:
  targetRef: {kind: Service, name: db}
  action: AUDIT
  rules:
  - from: [{source: {namespaces: [shop]}}]
`)
	catalog := startSidecar(t, cp, sidecarOpts{workload: "catalog-1", namespace: "shop", identity: "catalog",
		labels: []string{"app=catalog"}, appPort: app.port(t)})
	dbSide := startSidecar(t, cp, sidecarOpts{workload: "db-1", namespace: "shop", identity: "db",
		labels: []string{"app=db"}, appPort: portOf(t, db), appProtocol: "TCP"})
	webSide, web := clientOf(t, cp, "shop", "web", "db.shop:5432")
	_, admin := clientOf(t, cp, "shop", "admin")
	intruderSide, intruder := clientOf(t, cp, "other", "intruder", "db.shop:5432")

	t.Run("listed identities reach listed paths", func(t *testing.T) {
		expect(t, web, "http://catalog.shop/items", 200)
		expect(t, web, "http://catalog.shop/items/42", 200)
		if r := do(web, http.MethodDelete, "http://catalog.shop/items/42"); r.code != 403 {
			t.Fatalf("DELETE is not a listed method: %d", r.code)
		}
	})

	t.Run("default deny", func(t *testing.T) {
		app.reset()
		for _, tc := range []struct {
			c    *http.Client
			who  string
			path string
		}{{web, "web", "/orders"}, {admin, "admin", "/items"}, {intruder, "intruder", "/items"}, {intruder, "intruder", "/"}} {
			r := expect(t, tc.c, "http://catalog.shop"+tc.path, 403)
			if strings.TrimSpace(r.body) != "" {
				t.Errorf("%s %s: a denial has no body, got %q", tc.who, tc.path, r.body)
			}
		}
		if seen := app.seen(); len(seen) != 0 {
			t.Fatalf("denied requests reached the app: %v", seen)
		}
		if n := metricSum(t, catalog, "weft_authz_denied_total", nil); n < 4 {
			t.Fatalf("weft_authz_denied_total = %v, want ≥ 4", n)
		}
	})

	t.Run("DENY overrides ALLOW", func(t *testing.T) {
		r := expect(t, web, "http://catalog.shop/items/secret", 403)
		if got := metricSum(t, catalog, "weft_authz_denied_total", map[string]string{"policy": "no-secrets"}); got < 1 {
			t.Fatalf("denial not counted for policy no-secrets: %v (%s)", got, r.body)
		}
	})

	t.Run("namespace rule", func(t *testing.T) {
		expect(t, admin, "http://catalog.shop/public/a", 200)
		expect(t, web, "http://catalog.shop/public/a", 200)
		expect(t, intruder, "http://catalog.shop/public/a", 403)
	})

	t.Run("IP block rule", func(t *testing.T) {
		// Every sidecar here connects from 127.0.0.1.
		expect(t, intruder, "http://catalog.shop/loopback/a", 200)
		expect(t, web, "http://catalog.shop/ten/a", 403)
	})

	t.Run("AUDIT logs without blocking", func(t *testing.T) {
		expect(t, web, "http://catalog.shop/items/audited", 200)
		if got := metricSum(t, catalog, "weft_authz_audit_total", map[string]string{"policy": "audit-items"}); got < 1 {
			t.Fatalf("weft_authz_audit_total{policy=~audit-items} = %v", got)
		}
		waitFor(t, "audit log line", 5*time.Second, func() error {
			for _, line := range strings.Split(catalog.output(), "\n") {
				if strings.Contains(line, "authz audit") && strings.Contains(line, "audit-items") {
					return nil
				}
			}
			return fmt.Errorf("no 'authz audit' line naming audit-items in the proxy log")
		})
	})

	t.Run("gRPC denial is trailers-only PERMISSION_DENIED", func(t *testing.T) {
		r := do(intruder, http.MethodPost, "http://catalog.shop/shop.Catalog/List", "content-type", "application/grpc")
		if r.err != nil || r.code != 200 || r.header.Get("grpc-status") != "7" {
			t.Fatalf("got %d grpc-status %q err %v", r.code, r.header.Get("grpc-status"), r.err)
		}
	})

	t.Run("TCP network RBAC", func(t *testing.T) {
		waitFor(t, "web reaches db", 15*time.Second, func() error { return echoOnce(webSide.upstreams["db.shop:5432"]) })
		waitFor(t, "intruder refused by db", 15*time.Second, func() error {
			if err := echoOnce(intruderSide.upstreams["db.shop:5432"]); err == nil {
				return fmt.Errorf("the intruder's connection was proxied")
			}
			return nil
		})
		if n := metricSum(t, dbSide, "weft_authz_denied_total", nil); n < 1 {
			t.Fatalf("TCP denial not counted: %v", n)
		}
		// AUDIT on a TCP port: web's allowed connections are logged and
		// counted, never blocked.
		if got := metricSum(t, dbSide, "weft_authz_audit_total", map[string]string{"policy": "db-audit"}); got < 1 {
			t.Fatalf("weft_authz_audit_total{policy=~db-audit} = %v", got)
		}
		waitFor(t, "TCP audit log line", 5*time.Second, func() error {
			for _, line := range strings.Split(dbSide.output(), "\n") {
				if strings.Contains(line, "authz audit") && strings.Contains(line, "db-audit") && strings.Contains(line, spiffe("shop", "web")) {
					return nil
				}
			}
			return fmt.Errorf("no 'authz audit' line naming db-audit and web in the db sidecar's log")
		})
	})
}

// startEcho is a TCP server that echoes until the client half-closes.
func startEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func echoOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(b) != "ping" {
		return fmt.Errorf("echo %q", b)
	}
	return nil
}

// TestAuthzCustom: a CUSTOM policy sends requests to `weft authz-server`,
// whose Rego policy decides on a header and the caller's identity and adds
// a header for the app; with the authorizer gone, the same requests fail
// closed (403).
func TestAuthzCustom(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "authz.rego")
	if err := os.WriteFile(policy, []byte(`package weft.authz

default response := {"allowed": false}

response := {"allowed": true, "headers": {"x-authz-user": input.source.service_account}} if {
	input.attributes.request.http.headers["x-role"] == "admin"
	input.source.spiffe_id == "`+spiffe("shop", "web")+`"
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	authzAddr := freeAddr(t)
	authz := start(t, "weft authz-server", weftBin, "authz-server", "--listen", authzAddr, "--policy", policy,
		"--query", "data.weft.authz.response", "--log-level", "debug")
	eventually(t, 20*time.Second, func() error {
		c, err := net.DialTimeout("tcp", authzAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})

	cp := newControlPlane(t)
	app := startAuthzApp(t)
	cp.apply(t, `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: weft-system}
spec:
  authorization:
    providers: [{name: opa, extAuthz: {service: "`+authzAddr+`", timeout: 500ms, failOpen: false}}]
---
`+serviceYAML("catalog", "app: catalog", app.port(t))+`apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: opa-admin, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  action: CUSTOM
  provider: {name: opa}
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
`)
	catalog := startSidecar(t, cp, sidecarOpts{workload: "catalog-1", namespace: "shop", identity: "catalog",
		labels: []string{"app=catalog"}, appPort: app.port(t)})
	_, web := clientOf(t, cp, "shop", "web")
	_, other := clientOf(t, cp, "shop", "other")

	t.Run("the policy allows and adds headers", func(t *testing.T) {
		r := expect(t, web, "http://catalog.shop/admin/users", 200, "x-role", "admin", "x-authz-user", "forged")
		if !strings.Contains(r.body, "x-authz-user=web") {
			t.Fatalf("the app must see the authorizer's header, not the client's: %q", r.body)
		}
	})
	t.Run("a wrong header is denied", func(t *testing.T) {
		expect(t, web, "http://catalog.shop/admin/users", 403, "x-role", "user")
		if n := metricSum(t, catalog, "weft_authz_denied_total", nil); n < 1 {
			t.Fatalf("not counted: %v", n)
		}
	})
	t.Run("a wrong identity is denied", func(t *testing.T) {
		expect(t, other, "http://catalog.shop/admin/users", 403, "x-role", "admin")
	})
	t.Run("paths outside the CUSTOM rule are not sent", func(t *testing.T) {
		expect(t, other, "http://catalog.shop/items", 200)
	})
	t.Run("authorizer down fails closed", func(t *testing.T) {
		authz.stop(syscall.SIGKILL, 5*time.Second)
		app.reset()
		expect(t, web, "http://catalog.shop/admin/users", 403, "x-role", "admin")
		for _, p := range app.seen() {
			if strings.HasPrefix(p, "/admin") {
				t.Fatalf("a request reached the app without a decision: %v", app.seen())
			}
		}
		expect(t, web, "http://catalog.shop/items", 200)
	})
}

// jwtKeys signs tokens for the JWT tests.
type jwtKeys struct {
	ec  *ecdsa.PrivateKey
	rsa *rsa.PrivateKey
}

func newJWTKeys(t *testing.T) *jwtKeys {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &jwtKeys{ec: ec, rsa: rk}
}

var b64 = base64.RawURLEncoding

// jwks is the public key set: ES256 key "ec1", RS256 key "rsa1".
func (k *jwtKeys) jwks() string {
	pad := func(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }
	set := map[string]any{"keys": []map[string]string{
		{"kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256", "use": "sig",
			"x": b64.EncodeToString(pad(k.ec.X.Bytes())), "y": b64.EncodeToString(pad(k.ec.Y.Bytes()))},
		{"kty": "RSA", "kid": "rsa1", "alg": "RS256", "use": "sig",
			"n": b64.EncodeToString(k.rsa.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(k.rsa.E)).Bytes())},
	}}
	b, _ := json.Marshal(set)
	return string(b)
}

// token is a hand-made JWS of claims with the header's alg and kid.
func (k *jwtKeys) token(t *testing.T, alg, kid string, claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch alg {
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, k.ec, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case "RS256":
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, sum[:]); err != nil {
			t.Fatal(err)
		}
	case "none":
	default:
		t.Fatalf("alg %s", alg)
	}
	return input + "." + b64.EncodeToString(sig)
}

// TestAuthzJWT: RequestAuthentication with key sets the control plane
// fetches (jwksUri), and an ALLOW policy on request principals: the
// accept/reject matrix of tokens.
func TestAuthzJWT(t *testing.T) {
	keys := newJWTKeys(t)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, keys.jwks())
	}))
	t.Cleanup(jwks.Close)
	// The second issuer's key server is down from the start: the control
	// plane never gets its keys, so its tokens never verify.
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/jwks.json"
	down.Close()

	const iss, aud, issDown = "https://issuer.example", "catalog", "https://down.example"
	cp := newControlPlane(t)
	app := startAuthzApp(t)
	cp.apply(t, serviceYAML("catalog", "app: catalog", app.port(t))+fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: catalog-jwt, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  jwtRules:
  - issuer: %[1]s
    audiences: [%[2]s]
    jwksUri: %[3]s
    algorithms: [ES256, RS256]
    outputClaimToHeaders: [{header: x-user, claim: sub}]
  - issuer: %[4]s
    audiences: [%[2]s]
    jwksUri: %[5]s
    algorithms: [ES256]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-users, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["%[1]s/*", "%[4]s/*"]}}]
`, iss, aud, jwks.URL+"/jwks.json", issDown, downURL))
	startSidecar(t, cp, sidecarOpts{workload: "catalog-1", namespace: "shop", identity: "catalog",
		labels: []string{"app=catalog"}, appPort: app.port(t)})
	_, web := clientOf(t, cp, "shop", "web")

	now := time.Now().Unix()
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": iss, "sub": "alice", "aud": aud, "iat": now, "exp": now + 600}
		if mod != nil {
			mod(c)
		}
		return c
	}
	bearer := func(tok string) []string { return []string{"authorization", "Bearer " + tok} }

	valid := keys.token(t, "ES256", "ec1", claims(nil))
	r := expect(t, web, "http://catalog.shop/items", 200, append(bearer(valid), "x-user", "mallory")...)
	if !strings.Contains(r.body, "x-user=alice") {
		t.Fatalf("the app must see the verified claim, not the client's header: %q", r.body)
	}

	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"valid RS256", keys.token(t, "RS256", "rsa1", claims(nil)), 200},
		{"no token: no request principal", "", 403},
		{"expired", keys.token(t, "ES256", "ec1", claims(func(c map[string]any) { c["exp"] = now - 3600; c["iat"] = now - 7200 })), 401},
		{"not yet valid", keys.token(t, "ES256", "ec1", claims(func(c map[string]any) { c["nbf"] = now + 3600 })), 401},
		{"wrong issuer", keys.token(t, "ES256", "ec1", claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), 401},
		{"wrong audience", keys.token(t, "ES256", "ec1", claims(func(c map[string]any) { c["aud"] = "billing" })), 401},
		{"alg none", keys.token(t, "none", "ec1", claims(nil)), 401},
		{"unknown kid", keys.token(t, "ES256", "nope", claims(nil)), 401},
		{"alg switched to RS256 on the EC key", keys.token(t, "RS256", "ec1", claims(nil)), 401},
		{"tampered payload", func() string {
			p := strings.Split(valid, ".")
			c, _ := json.Marshal(claims(func(c map[string]any) { c["sub"] = "admin" }))
			return p[0] + "." + b64.EncodeToString(c) + "." + p[2]
		}(), 401},
		{"JWKS server down", keys.token(t, "ES256", "ec1", claims(func(c map[string]any) { c["iss"] = issDown })), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.token != "" {
				h = bearer(tt.token)
			}
			r := do(web, http.MethodGet, "http://catalog.shop/items", h...)
			if r.err != nil || r.code != tt.want {
				t.Fatalf("got %d %v %q, want %d", r.code, r.err, r.body, tt.want)
			}
			if tt.want == 401 {
				if !strings.HasPrefix(r.header.Get("www-authenticate"), "Bearer") {
					t.Errorf("401 without www-authenticate: Bearer: %v", r.header)
				}
				if strings.TrimSpace(r.body) != "" {
					t.Errorf("401 with a body: %q", r.body)
				}
			}
		})
	}
}

// TestAuthzPathNormalization: a DENY on /admin (and on a host) holds for
// every spelling of the path and host a client can try, sent byte for
// byte to the destination's inbound port (plaintext, PERMISSIVE) and
// through a client sidecar; none reaches the app, and the app sees the
// normalised path of what is allowed. Paths are case-sensitive
// (proxy/normalize): /ADMIN is another path and is not denied.
func TestAuthzPathNormalization(t *testing.T) {
	cp := newControlPlane(t)
	app := startAuthzApp(t)
	cp.apply(t, serviceYAML("catalog", "app: catalog", app.port(t))+`apiVersion: weft.dev/v1alpha1
kind: MTLSPolicy
metadata: {name: catalog, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  mode: PERMISSIVE
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
  - to: [{operation: {hosts: ["catalog.shop"], paths: ["/by-host"]}}]
`)
	catalog := startSidecar(t, cp, sidecarOpts{workload: "catalog-1", namespace: "shop", identity: "catalog",
		labels: []string{"app=catalog"}, appPort: app.port(t)})
	client, _ := clientOf(t, cp, "shop", "web", "catalog.shop")
	direct := "127.0.0.1:" + catalog.inboundPort
	viaMesh := client.upstreams["catalog.shop"]
	waitFor(t, "policy in place", 15*time.Second, func() error {
		if code, body := rawGet(t, direct, "/admin", "catalog.shop"); code != 403 {
			return fmt.Errorf("direct /admin: %d %q", code, body)
		}
		if code, body := rawGet(t, viaMesh, "/admin", "catalog.shop"); code != 403 {
			return fmt.Errorf("mesh /admin: %d %q", code, body)
		}
		return nil
	})

	denied := []struct{ target, host string }{
		{"/admin", "catalog.shop"},
		{"/admin/", "catalog.shop"},
		{"/admin/users", "catalog.shop"},
		{"//admin", "catalog.shop"},
		{"///admin//users", "catalog.shop"},
		{"/./admin", "catalog.shop"},
		{"/x/../admin", "catalog.shop"},
		{"/x/y/../../admin", "catalog.shop"},
		{"/../admin", "catalog.shop"},
		{"/%2e%2e/admin", "catalog.shop"},
		{"/x/%2e%2e/admin", "catalog.shop"},
		{"/x/%2E%2E/admin", "catalog.shop"},
		{"/%2e/admin", "catalog.shop"},
		{"/%61dmin", "catalog.shop"},
		{"/%2fadmin", "catalog.shop"},
		{"/x%2F..%2Fadmin", "catalog.shop"},
		{"/%5cadmin", "catalog.shop"},
		{"/x%5C..%5Cadmin", "catalog.shop"},
		{"/x/..;/admin", "catalog.shop"},
		{"/x/..%3B/admin", "catalog.shop"},
		{"/%C0%AE%C0%AE/admin", "catalog.shop"},
		{"/admin%00", "catalog.shop"},
		{"/admin?x=1", "catalog.shop"},
		{"/by-host", "catalog.shop"},
		{"/by-host", "CATALOG.SHOP"},
		{"/by-host", "Catalog.Shop."},
		{"/by-host", "catalog.shop:80"},
		{"/by-host", "catalog.shop.:80"},
		{"/by-host", "Catalog.Shop.:8080"},
		{"/admin;x=1", "catalog.shop"},
		{"/admin;jsessionid=1/users", "catalog.shop"},
	}
	for _, via := range []struct{ name, addr string }{{"direct", direct}, {"through the mesh", viaMesh}} {
		t.Run(via.name, func(t *testing.T) {
			app.reset()
			for _, d := range denied {
				code, body := rawGet(t, via.addr, d.target, d.host)
				if code != 403 && code != 400 {
					t.Errorf("%s (host %s): %d %q, want 403 or 400", d.target, d.host, code, body)
				}
			}
			if seen := app.seen(); len(seen) != 0 {
				t.Fatalf("denied spellings reached the app: %q", seen)
			}
			for _, tc := range []struct{ target, host, want string }{
				{"/x/../items//1", "catalog.shop", "/items/1"},
				{"/%69tems/./a%20b?q=%2F", "catalog.shop", "/items/a%20b?q=%2F"},
				{"/ADMIN", "catalog.shop", "/ADMIN"},
				{"/by-host", "other.example", "/by-host"},
			} {
				if tc.host != "catalog.shop" && via.addr == viaMesh {
					continue // a local upstream port sets the authority itself
				}
				code, body := rawGet(t, via.addr, tc.target, tc.host)
				if code != 200 || !strings.Contains(body, "uri="+tc.want+" ") {
					t.Errorf("%s: %d %q, want 200 and the app seeing %s", tc.target, code, body, tc.want)
				}
			}
		})
	}
	t.Run("encoded slash is a 400 with x-weft-error", func(t *testing.T) {
		resp := rawResponse(t, direct, "/a%2Fb", "catalog.shop")
		if resp.StatusCode != 400 || resp.Header.Get("x-weft-error") == "" {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
	})
}

// rawGet sends "GET target" byte for byte to addr and returns the status
// and body.
func rawGet(t *testing.T, addr, target, host string) (int, string) {
	resp := rawResponse(t, addr, target, host)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func rawResponse(t *testing.T, addr, target, host string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return resp
}
