package status_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/jwks"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/status"
)

// fakeKeySets answers as a jwks.Fetcher would.
type fakeKeySets map[string]jwks.State

func (f fakeKeySets) State(uri string) (jwks.State, bool) {
	s, ok := f[uri]
	return s, ok
}

const (
	ecKey  = `{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}`
	rsaKey = `{"kty":"RSA","n":"AQAB","e":"AQAB"}`
)

func raObjects(t *testing.T, yaml string) (*model.State, map[string]*v1alpha1.RequestAuthentication) {
	t.Helper()
	objs, err := resource.DecodeYAML("t", []byte(`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
`+yaml))
	if err != nil {
		t.Fatal(err)
	}
	ras := map[string]*v1alpha1.RequestAuthentication{}
	for _, o := range objs {
		if err := resource.Validate(o); err != nil {
			t.Fatal(err)
		}
		if ra, ok := o.(*v1alpha1.RequestAuthentication); ok {
			ras[ra.Name] = ra
		}
	}
	st, err := model.FromObjects(objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st, ras
}

func TestRequestAuthnKeySets(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	set := func(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }
	keys := fakeKeySets{
		"https://ok/k":       {Set: set(ecKey, rsaKey), Keys: 2, Fetched: t0, NextAttempt: t0.Add(5 * time.Minute)},
		"https://stale/k":    {Set: set(ecKey), Keys: 1, Fetched: t0, Err: "status 503 Service Unavailable", FailingSince: t0.Add(5 * time.Minute), NextAttempt: t0.Add(6 * time.Minute)},
		"https://failed/k":   {Err: `Get "https://failed/k": dial tcp: connection refused`, FailingSince: t0, NextAttempt: t0.Add(8 * time.Second)},
		"https://inflight/k": {},
		"https://rsaonly/k":  {Set: set(rsaKey), Keys: 1, Fetched: t0},
	}
	st, ras := raObjects(t, `apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: ok, namespace: shop}
spec: {targetRef: {name: web}, jwtRules: [{issuer: a, jwksUri: "https://ok/k"}, {issuer: b, jwks: '{"keys":[`+ecKey+`]}'}]}
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: stale, namespace: shop}
spec: {jwtRules: [{issuer: a, jwksUri: "https://stale/k"}]}
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: failed, namespace: shop}
spec: {jwtRules: [{issuer: a, jwksUri: "https://ok/k"}, {issuer: c, jwksUri: "https://failed/k"}]}
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: pending, namespace: shop}
spec: {jwtRules: [{issuer: a, jwksUri: "https://unsynced/k"}, {issuer: b, jwksUri: "https://inflight/k"}]}
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: unusable, namespace: shop}
spec: {jwtRules: [{issuer: a, jwksUri: "https://rsaonly/k", algorithms: [ES256]}, {issuer: b, jwks: '{"keys":[`+ecKey+`]}', algorithms: [RS256]}]}
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: worst, namespace: shop}
spec: {jwtRules: [{issuer: a, jwksUri: "https://unsynced/k"}, {issuer: b, jwksUri: "https://stale/k"}, {issuer: c, jwksUri: "https://rsaonly/k", algorithms: [ES256]}]}
`)
	rep := status.Compute(st, keys)
	tests := []struct {
		name   string
		ok     bool
		reason string
		states []string
		msg    []string
	}{
		{"ok", true, "ResolvedRefs", []string{"Ready", "Ready"}, []string{
			"issuer a: 2 keys fetched from https://ok/k at 2026-05-01T12:00:00Z", "issuer b: 1 key, from the inline jwks"}},
		{"stale", false, "JWKSFetchFailed", []string{"Stale"}, []string{
			"issuer a: fetching https://stale/k fails (since 2026-05-01T12:05:00Z): status 503 Service Unavailable; serving 1 key fetched at 2026-05-01T12:00:00Z, next attempt at 2026-05-01T12:06:00Z"}},
		{"failed", false, "JWKSFetchFailed", []string{"Ready", "Failed"}, []string{
			`issuer c: fetching https://failed/k fails (since 2026-05-01T12:00:00Z): Get "https://failed/k": dial tcp: connection refused; never fetched, its tokens are refused (401), next attempt at 2026-05-01T12:00:08Z`}},
		{"pending", false, "Pending", []string{"Pending", "Pending"}, []string{
			"issuer a: https://unsynced/k not fetched yet", "issuer b: https://inflight/k not fetched yet"}},
		{"unusable", false, "NoUsableKeys", []string{"NoUsableKeys", "NoUsableKeys"}, []string{
			"issuer a: no key of https://rsaonly/k suits algorithms ES256", "issuer b: no key of the inline jwks suits algorithms RS256"}},
		{"worst", false, "JWKSFetchFailed", []string{"Pending", "Stale", "NoUsableKeys"}, []string{"issuer a:", "issuer b:", "issuer c:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, sets, found := rep.RequestAuthn("shop", tt.name)
			if !found || c.Type != "ResolvedRefs" || c.OK != tt.ok || c.Reason != tt.reason {
				t.Fatalf("condition %+v (found %v), want ok=%v %s", c, found, tt.ok, tt.reason)
			}
			for _, m := range tt.msg {
				if !strings.Contains(c.Message, m) {
					t.Errorf("message %q\nmissing %q", c.Message, m)
				}
			}
			if !tt.ok && strings.Contains(c.Message, "issuer a: 2 keys") {
				t.Errorf("a False condition names the issuers that are fine: %q", c.Message)
			}
			var states []string
			for _, s := range sets {
				states = append(states, s.State)
			}
			if strings.Join(states, ",") != strings.Join(tt.states, ",") {
				t.Errorf("states %v, want %v", states, tt.states)
			}

			// Fill writes both conditions and status.jwks.
			ra := ras[tt.name]
			rep.Fill(ra, nil, t0)
			if len(ra.Status.Ancestors) != 1 || len(ra.Status.Ancestors[0].Conditions) != 2 ||
				ra.Status.Ancestors[0].Conditions[1].Type != "ResolvedRefs" || ra.Status.Ancestors[0].Conditions[1].Reason != tt.reason {
				t.Fatalf("status: %+v", ra.Status)
			}
			if len(ra.Status.JWKS) != len(tt.states) {
				t.Fatalf("status.jwks: %+v", ra.Status.JWKS)
			}
		})
	}

	// status.jwks of the stale one carries the times and the error.
	ra := ras["stale"]
	rep.Fill(ra, nil, t0)
	j := ra.Status.JWKS[0]
	if j.Issuer != "a" || j.JWKSURI != "https://stale/k" || j.State != v1alpha1.JWKSStale || j.Keys != 1 ||
		!j.FetchedAt.Time.Equal(t0) || !j.FailingSince.Time.Equal(t0.Add(5*time.Minute)) ||
		!j.NextAttempt.Time.Equal(t0.Add(6*time.Minute)) || j.Error != "status 503 Service Unavailable" {
		t.Errorf("status.jwks[0]: %+v", j)
	}
	// While an attempt is under way there is no next one yet.
	c, _, _ := status.Compute(st, fakeKeySets{"https://stale/k": {Set: set(ecKey), Keys: 1, Fetched: t0, Err: "refused", FailingSince: t0}}).
		RequestAuthn("shop", "stale")
	if !strings.HasSuffix(c.Message, "serving 1 key fetched at 2026-05-01T12:00:00Z, retrying now") {
		t.Errorf("attempt under way: %q", c.Message)
	}
	// An inline key set has no fetch times.
	ra = ras["ok"]
	rep.Fill(ra, nil, t0)
	if j := ra.Status.JWKS[1]; j.JWKSURI != "" || j.FetchedAt != nil || j.NextAttempt != nil || j.Keys != 1 {
		t.Errorf("inline status.jwks: %+v", j)
	}
}

// TestRequestAuthnTransitions: ResolvedRefs keeps its transition time
// while the key set's state holds (a refresh, another failed attempt)
// and gets a new one when it turns.
func TestRequestAuthnTransitions(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st, ras := raObjects(t, `apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: users, namespace: shop}
spec: {targetRef: {name: web}, jwtRules: [{issuer: a, jwksUri: "https://idp/k"}]}
`)
	ra := ras["users"]
	tr := status.NewTransitions()
	const set = `{"keys":[` + ecKey + `]}`
	resolved := func(s jwks.State, now time.Time) metav1.Condition {
		t.Helper()
		status.Compute(st, fakeKeySets{"https://idp/k": s}).Fill(ra, tr, now)
		return ra.Status.Ancestors[0].Conditions[1]
	}
	steps := []struct {
		name   string
		state  jwks.State
		at     time.Duration
		status metav1.ConditionStatus
		since  time.Duration // expected lastTransitionTime
	}{
		{"down", jwks.State{Err: "refused", FailingSince: t0, NextAttempt: t0.Add(time.Second)}, 0, metav1.ConditionFalse, 0},
		{"still down", jwks.State{Err: "refused", FailingSince: t0, NextAttempt: t0.Add(4 * time.Second)}, 3 * time.Second, metav1.ConditionFalse, 0},
		{"up", jwks.State{Set: set, Keys: 1, Fetched: t0.Add(10 * time.Second)}, 10 * time.Second, metav1.ConditionTrue, 10 * time.Second},
		{"refreshed", jwks.State{Set: set, Keys: 1, Fetched: t0.Add(5 * time.Minute)}, 5 * time.Minute, metav1.ConditionTrue, 10 * time.Second},
		{"stale", jwks.State{Set: set, Keys: 1, Fetched: t0.Add(5 * time.Minute), Err: "refused", FailingSince: t0.Add(10 * time.Minute)}, 10 * time.Minute, metav1.ConditionFalse, 10 * time.Minute},
		{"still stale", jwks.State{Set: set, Keys: 1, Fetched: t0.Add(5 * time.Minute), Err: "refused", FailingSince: t0.Add(10 * time.Minute)}, 12 * time.Minute, metav1.ConditionFalse, 10 * time.Minute},
	}
	for _, s := range steps {
		c := resolved(s.state, t0.Add(s.at))
		if c.Status != s.status || !c.LastTransitionTime.Time.Equal(t0.Add(s.since)) {
			t.Errorf("%s: %s since %v (%s), want %s since %v", s.name, c.Status, c.LastTransitionTime.Time, c.Message, s.status, t0.Add(s.since))
		}
	}
	if j := ra.Status.JWKS[0]; j.State != v1alpha1.JWKSStale || !strings.Contains(ra.Status.Ancestors[0].Conditions[1].Message, "serving 1 key fetched at 2026-05-01T12:05:00Z") {
		t.Errorf("stale: %+v %s", j, ra.Status.Ancestors[0].Conditions[1].Message)
	}
}
