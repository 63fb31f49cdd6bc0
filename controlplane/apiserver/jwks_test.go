package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/jwks"
	"github.com/weftmesh/weft/controlplane/store/bolt"
)

// TestRequestAuthnJWKSStatus reads a RequestAuthentication's status
// while its key server is down, then up, then down again: the status
// says why fetching fails, turns True once fetched, then says the keys
// fetched before are served. None of it is written to the store.
func TestRequestAuthnJWKSStatus(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	const keys = `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(keys))
	}))
	defer idp.Close()
	uri := idp.URL + "/jwks.json"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fetcher := jwks.New(ctx, jwks.Options{Refresh: 40 * time.Millisecond, MinBackoff: 10 * time.Millisecond})
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(apiserver.New(apiserver.Options{Store: st, Workloads: noWorkloads{}, Proxies: noWorkloads{}, KeySets: fetcher}))
	defer srv.Close()

	if code, m := do(t, "PUT", srv.URL+"/v1/services/shop/catalog", svc); code != 201 {
		t.Fatalf("service: %d %v", code, m)
	}
	ra := fmt.Sprintf(`{"apiVersion":"weft.dev/v1alpha1","kind":"RequestAuthentication","metadata":{"name":"users","namespace":"shop"},
		"spec":{"targetRef":{"name":"catalog"},"jwtRules":[{"issuer":"https://idp.example","jwksUri":%q}]}}`, uri)
	if code, m := do(t, "PUT", srv.URL+"/v1/requestauthentications/shop/users", ra); code != 201 {
		t.Fatalf("requestauthentication: %d %v", code, m)
	}
	_, rev, err := st.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}

	get := func() v1alpha1.RequestAuthentication {
		t.Helper()
		resp, err := http.Get(srv.URL + "/v1/requestauthentications/shop/users")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out v1alpha1.RequestAuthentication
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// waitState reads until the key set reaches state, and returns the
	// object with its ResolvedRefs condition checked.
	waitState := func(state, condStatus, reason string, msg ...string) v1alpha1.RequestAuthentication {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ra := get()
			if len(ra.Status.JWKS) == 1 && ra.Status.JWKS[0].State == state {
				c := ra.Status.Ancestors[0].Conditions
				if len(c) != 2 || c[1].Type != "ResolvedRefs" || string(c[1].Status) != condStatus || c[1].Reason != reason {
					t.Fatalf("%s: conditions %+v", state, c)
				}
				for _, m := range msg {
					if !strings.Contains(c[1].Message, m) {
						t.Errorf("%s: message %q does not say %q", state, c[1].Message, m)
					}
				}
				return ra
			}
			if time.Now().After(deadline) {
				t.Fatalf("key set never %s: %+v", state, ra.Status)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Not fetched until the control plane wants it (its push calls Sync).
	waitState(v1alpha1.JWKSPending, "False", "Pending", "not fetched yet")
	fetcher.Sync([]string{uri})

	// Down from the start: never fetched.
	failed := waitState(v1alpha1.JWKSFailed, "False", "JWKSFetchFailed",
		"issuer https://idp.example", uri, "status 503 Service Unavailable", "never fetched")
	if j := failed.Status.JWKS[0]; j.FetchedAt != nil || j.FailingSince == nil || j.Keys != 0 {
		t.Errorf("failed: %+v", j)
	}
	// The next attempt is given, or said to be under way.
	if m := failed.Status.Ancestors[0].Conditions[1].Message; !strings.Contains(m, "next attempt at") && !strings.HasSuffix(m, "retrying now") {
		t.Errorf("failed: no next attempt in %q", m)
	}
	if got := fetcher.Sync([]string{uri}); len(got) != 0 {
		t.Errorf("keys served before any fetch: %v", got)
	}

	// Up: True, with the key count.
	down.Store(false)
	ok := waitState(v1alpha1.JWKSReady, "True", "ResolvedRefs", "2 keys fetched from "+uri)
	fetched := ok.Status.JWKS[0].FetchedAt
	if fetched == nil || ok.Status.JWKS[0].Keys != 2 {
		t.Errorf("ready: %+v", ok.Status.JWKS[0])
	}

	// Down again: stale, the keys fetched before kept and served.
	down.Store(true)
	stale := waitState(v1alpha1.JWKSStale, "False", "JWKSFetchFailed", "serving 2 keys fetched at", "status 503")
	if got := fetcher.Sync([]string{uri}); got[uri] != keys {
		t.Errorf("the last good key set is not served while fetching fails: %q", got[uri])
	}
	if j := stale.Status.JWKS[0]; j.Keys != 2 || j.FetchedAt == nil || j.FetchedAt.Before(fetched) || j.FailingSince == nil {
		t.Errorf("stale: %+v", j)
	}
	// More failed attempts leave the condition's transition time alone.
	since := stale.Status.Ancestors[0].Conditions[1].LastTransitionTime
	time.Sleep(100 * time.Millisecond)
	again := waitState(v1alpha1.JWKSStale, "False", "JWKSFetchFailed")
	if got := again.Status.Ancestors[0].Conditions[1].LastTransitionTime; !got.Equal(&since) {
		t.Errorf("lastTransitionTime moved from %v to %v while the state held", since, got)
	}

	// Status is computed on read: nothing was written to the store.
	if _, now, err := st.List(ctx, "/"); err != nil || now != rev {
		t.Errorf("store revision %d → %d (%v): status must not be written", rev, now, err)
	}
}
