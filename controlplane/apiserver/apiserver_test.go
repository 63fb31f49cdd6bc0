package apiserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/store/bolt"
	"github.com/weftmesh/weft/controlplane/xds"
)

type noWorkloads struct{}

func (noWorkloads) List() []*model.Workload    { return nil }
func (noWorkloads) Proxies() []xds.ProxyStatus { return nil }
func (noWorkloads) Problems() []string         { return nil }

func newServer(t *testing.T) (*httptest.Server, *bolt.Store) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(apiserver.New(apiserver.Options{Store: st, Workloads: noWorkloads{}, Proxies: noWorkloads{}}))
	t.Cleanup(srv.Close)
	return srv, st
}

func do(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

const svc = `{"apiVersion":"weft.dev/v1alpha1","kind":"Service","metadata":{"name":"catalog","namespace":"shop"},"spec":{"selector":{"app":"catalog"},"ports":[{"port":80}]}}`

func TestApplyLifecycle(t *testing.T) {
	srv, _ := newServer(t)
	url := srv.URL + "/v1/services/shop/catalog"
	code, m := do(t, "PUT", url, svc)
	if code != 201 || m["result"] != "created" {
		t.Fatalf("create: %d %v", code, m)
	}
	obj := m["object"].(map[string]any)
	md := obj["metadata"].(map[string]any)
	if md["uid"] == "" || md["creationTimestamp"] == nil || md["generation"] != 1.0 || md["resourceVersion"] == "" {
		t.Fatalf("server-owned metadata missing: %v", md)
	}
	spec := obj["spec"].(map[string]any)
	if spec["ports"].([]any)[0].(map[string]any)["targetPort"] != 80.0 {
		t.Fatalf("defaults not applied: %v", spec)
	}
	code, m = do(t, "PUT", url, svc)
	if code != 200 || m["result"] != "unchanged" {
		t.Fatalf("re-apply: %d %v", code, m)
	}
	code, m = do(t, "PUT", url, strings.Replace(svc, `"port":80`, `"port":81`, 1))
	if code != 200 || m["result"] != "configured" {
		t.Fatalf("update: %d %v", code, m)
	}
	md2 := m["object"].(map[string]any)["metadata"].(map[string]any)
	if md2["generation"] != 2.0 || md2["uid"] != md["uid"] || md2["creationTimestamp"] != md["creationTimestamp"] {
		t.Fatalf("update metadata: %v (was %v)", md2, md)
	}
	code, m = do(t, "GET", srv.URL+"/v1/services?namespace=shop", "")
	if code != 200 || len(m["items"].([]any)) != 1 {
		t.Fatalf("list: %d %v", code, m)
	}
	code, _ = do(t, "DELETE", url, "")
	if code != 200 {
		t.Fatalf("delete: %d", code)
	}
	code, _ = do(t, "GET", url, "")
	if code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	code, _ = do(t, "DELETE", url, "")
	if code != 404 {
		t.Fatalf("second delete: %d", code)
	}
}

func TestApplyRefusesAndStoresNothing(t *testing.T) {
	srv, st := newServer(t)
	for _, tc := range []struct {
		name, url, body string
		code            int
		want            string
	}{
		{"invalid", "/v1/services/shop/catalog", strings.Replace(svc, `"port":80`, `"port":0`, 1), 422, "spec.ports[0].port"},
		{"unknown field", "/v1/services/shop/catalog", strings.Replace(svc, `"selector"`, `"selektor"`, 1), 400, "selektor"},
		{"not json", "/v1/services/shop/catalog", "{", 400, "not a resource"},
		{"url mismatch", "/v1/services/shop/other", svc, 400, "URL names"},
		{"kind mismatch", "/v1/httproutes/shop/catalog", svc, 400, "URL names"},
		{"unknown kind", "/v1/pods/shop/catalog", svc, 404, "unknown resource kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("PUT", srv.URL+tc.url, bytes.NewBufferString(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("got %d %s, want %d containing %q", resp.StatusCode, b, tc.code, tc.want)
			}
		})
	}
	kvs, _, err := st.List(t.Context(), "/")
	if err != nil || len(kvs) != 0 {
		t.Fatalf("refused applies stored something: %v %v", kvs, err)
	}
}

// TestRouteStatus: a route that cannot be honoured says so in its status,
// on GET and in lists; a client cannot write status.
func TestRouteStatus(t *testing.T) {
	srv, _ := newServer(t)
	if code, m := do(t, "PUT", srv.URL+"/v1/services/shop/catalog", svc); code != 201 {
		t.Fatalf("service: %d %v", code, m)
	}
	route := `{"apiVersion":"gateway.networking.k8s.io/v1","kind":"HTTPRoute","metadata":{"name":"r","namespace":"shop"},
"spec":{"parentRefs":[{"kind":"Service","name":"catalog","port":80}],"rules":[{"backendRefs":[{"name":"catalog-v9","port":80}]}]},
"status":{"parents":[{"parentRef":{"name":"x"},"controllerName":"evil","conditions":[]}]}}`
	if code, m := do(t, "PUT", srv.URL+"/v1/httproutes/shop/r", route); code != 201 {
		t.Fatalf("route: %d %v", code, m)
	}
	policy := `{"apiVersion":"weft.dev/v1alpha1","kind":"TrafficPolicy","metadata":{"name":"p","namespace":"shop"},
"spec":{"targetRef":{"kind":"Service","name":"gone"},"timeouts":{"request":"1s"}}}`
	if code, m := do(t, "PUT", srv.URL+"/v1/trafficpolicies/shop/p", policy); code != 201 {
		t.Fatalf("policy: %d %v", code, m)
	}
	conds := func(obj map[string]any, list string) []any {
		st := obj["status"].(map[string]any)
		return st[list].([]any)[0].(map[string]any)["conditions"].([]any)
	}
	code, m := do(t, "GET", srv.URL+"/v1/httproutes/shop/r", "")
	if code != 200 {
		t.Fatalf("get: %d %v", code, m)
	}
	parents := m["status"].(map[string]any)["parents"].([]any)
	if len(parents) != 1 || parents[0].(map[string]any)["controllerName"] != "weft.dev/mesh" {
		t.Fatalf("status: %v", m["status"])
	}
	c := conds(m, "parents")
	accepted, resolved := c[0].(map[string]any), c[1].(map[string]any)
	if accepted["status"] != "True" || resolved["status"] != "False" || resolved["reason"] != "BackendNotFound" ||
		!strings.Contains(resolved["message"].(string), "catalog-v9") || resolved["observedGeneration"] != 1.0 {
		t.Fatalf("conditions: %v", c)
	}
	code, m = do(t, "GET", srv.URL+"/v1/trafficpolicies", "")
	if code != 200 {
		t.Fatalf("list: %d", code)
	}
	item := m["items"].([]any)[0].(map[string]any)
	if c := conds(item, "ancestors")[0].(map[string]any); c["reason"] != "TargetNotFound" {
		t.Fatalf("policy condition: %v", c)
	}
}

// TestTelemetryRoutes: the traffic view's paths reach Options.Telemetry,
// and the resource routes are unchanged beside them.
func TestTelemetryRoutes(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tel := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "telemetry "+r.URL.Path) })
	srv := httptest.NewServer(apiserver.New(apiserver.Options{Store: st, Workloads: noWorkloads{}, Proxies: noWorkloads{}, Telemetry: tel}))
	defer srv.Close()
	for _, p := range []string{"/v1/stats", "/v1/tap", "/v1/prometheus/targets"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "telemetry "+p {
			t.Errorf("GET %s = %q", p, b)
		}
	}
	if code, m := do(t, "GET", srv.URL+"/v1/services", ""); code != 200 || m["items"] == nil {
		t.Errorf("GET /v1/services = %d %v", code, m)
	}
	code, m := do(t, "PUT", srv.URL+"/v1/meshconfigs/weft-system/mesh", `{"apiVersion":"weft.dev/v1alpha1","kind":"MeshConfig","metadata":{"name":"mesh","namespace":"weft-system"},"spec":{"tracing":{"otlp":{"endpoint":"127.0.0.1:4317"}}}}`)
	if code != 201 && code != 200 {
		t.Errorf("PUT meshconfig = %d %v", code, m)
	}
	if code, m := do(t, "PUT", srv.URL+"/v1/meshconfigs/weft-system/other", `{"apiVersion":"weft.dev/v1alpha1","kind":"MeshConfig","metadata":{"name":"other","namespace":"weft-system"},"spec":{}}`); code != 422 {
		t.Errorf("PUT meshconfig other = %d %v", code, m)
	}
}

// TestAuthzL7OnTCPRefused: an AuthorizationPolicy with HTTP fields that
// targets a TCP port is refused at apply time; L4 fields are accepted.
func TestAuthzL7OnTCPRefused(t *testing.T) {
	srv, _ := newServer(t)
	db := `{"apiVersion":"weft.dev/v1alpha1","kind":"Service","metadata":{"name":"db","namespace":"shop"},"spec":{"selector":{"app":"db"},"ports":[{"port":5432,"protocol":"TCP"}]}}`
	if code, m := do(t, "PUT", srv.URL+"/v1/services/shop/db", db); code != 201 {
		t.Fatalf("service: %d %v", code, m)
	}
	l7 := `{"apiVersion":"weft.dev/v1alpha1","kind":"AuthorizationPolicy","metadata":{"name":"p","namespace":"shop"},
"spec":{"targetRef":{"kind":"Service","name":"db"},"rules":[{"to":[{"operation":{"paths":["/admin"]}}]}]}}`
	code, m := do(t, "PUT", srv.URL+"/v1/authorizationpolicies/shop/p", l7)
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(m), "TCP port 5432") {
		t.Fatalf("L7 rule on a TCP port: %d %v", code, m)
	}
	l4 := `{"apiVersion":"weft.dev/v1alpha1","kind":"AuthorizationPolicy","metadata":{"name":"p","namespace":"shop"},
"spec":{"targetRef":{"kind":"Service","name":"db"},"rules":[{"from":[{"source":{"namespaces":["shop"]}}]}]}}`
	if code, m := do(t, "PUT", srv.URL+"/v1/authorizationpolicies/shop/p", l4); code != 201 {
		t.Fatalf("L4 rule on a TCP port: %d %v", code, m)
	}
}
