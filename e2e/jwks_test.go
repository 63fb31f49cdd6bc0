package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAuthzJWKSStatus: a RequestAuthentication whose key server is down,
// then up, then down again, seen by an operator (`weft get`) and by
// clients: the status says the fetch fails and tokens are refused, turns
// ok once the keys are fetched, then says stale while the keys fetched
// before keep verifying tokens.
func TestAuthzJWKSStatus(t *testing.T) {
	keys := newJWTKeys(t)
	var down atomic.Bool
	down.Store(true)
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, keys.jwks())
	}))
	t.Cleanup(idp.Close)
	uri := idp.URL + "/jwks.json"

	const iss = "https://issuer.example"
	// Refreshed (and, while failing, retried at least) every 2s.
	cp := newControlPlane(t, "--jwks-refresh", "2s")
	app := startAuthzApp(t)
	cp.apply(t, serviceYAML("catalog", "app: catalog", app.port(t))+fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: catalog-jwt, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  jwtRules:
  - issuer: %s
    jwksUri: %s
    algorithms: [ES256, RS256]
`, iss, uri))
	startSidecar(t, cp, sidecarOpts{workload: "catalog-1", namespace: "shop", identity: "catalog",
		labels: []string{"app=catalog"}, appPort: app.port(t)})
	_, web := clientOf(t, cp, "shop", "web")
	now := time.Now().Unix()
	token := keys.token(t, "ES256", "ec1", map[string]any{"iss": iss, "sub": "alice", "iat": now, "exp": now + 600})
	bearer := []string{"authorization", "Bearer " + token}
	const url = "http://catalog.shop/items"

	// get waits until `weft get ra` shows want in the JWKS column, and
	// returns the output.
	get := func(want string, notes ...string) string {
		t.Helper()
		var out string
		waitFor(t, "weft get ra shows JWKS "+want, 20*time.Second, func() error {
			var err error
			out, err = cp.weft(t, "", "get", "ra", "-n", "shop")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			lines := strings.Split(out, "\n")
			if len(lines) < 2 || !strings.Contains(lines[0], "JWKS") || !strings.Contains(lines[1], want) {
				return fmt.Errorf("got\n%s", out)
			}
			return nil
		})
		for _, n := range notes {
			if !strings.Contains(out, n) {
				t.Errorf("weft get ra does not say %q:\n%s", n, out)
			}
		}
		return out
	}

	// Down from the start: never fetched, tokens refused, and said so.
	get("failed", "JWKSFetchFailed", uri, "status 503 Service Unavailable", "never fetched, its tokens are refused (401)")
	expect(t, web, url, 401, bearer...)
	yaml, err := cp.weft(t, "", "get", "ra", "catalog-jwt", "-n", "shop", "-o", "yaml")
	if err != nil || !strings.Contains(yaml, "state: Failed") || !strings.Contains(yaml, "reason: JWKSFetchFailed") ||
		!strings.Contains(yaml, "nextAttempt:") && !strings.Contains(yaml, "retrying now") {
		t.Errorf("weft get -o yaml: %v\n%s", err, yaml)
	}

	// Up: fetched within a retry, pushed, tokens verify.
	down.Store(false)
	get(" ok ")
	expect(t, web, url, 200, bearer...)
	yaml, err = cp.weft(t, "", "get", "ra", "catalog-jwt", "-n", "shop", "-o", "yaml")
	if err != nil || !strings.Contains(yaml, "state: Ready") || !strings.Contains(yaml, "reason: ResolvedRefs") ||
		!strings.Contains(yaml, "2 keys fetched from "+uri) {
		t.Errorf("weft get -o yaml: %v\n%s", err, yaml)
	}

	// Down again: stale; the keys fetched before are kept, so tokens
	// still verify through failed refreshes.
	down.Store(true)
	get("stale (fetch failing for", "JWKSFetchFailed", "serving 2 keys fetched at")
	for range 3 {
		if r := do(web, http.MethodGet, url, bearer...); r.err != nil || r.code != 200 {
			t.Fatalf("while the key server is down: %d %v %q, want 200 (last good keys)", r.code, r.err, r.body)
		}
		time.Sleep(1500 * time.Millisecond)
	}
	get("stale (fetch failing for")
	// Failing again is logged once, not at every attempt.
	if n := strings.Count(cp.output(), "fetching JWKS failed; retrying"); n != 2 {
		t.Errorf("the control plane logged %d failure warnings, want 2 (one per run of failures)", n)
	}
}
