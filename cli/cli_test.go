package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/jwks"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/status"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test ./cli -update and review):\n%s", path, got)
	}
}

// TestGetOutput renders `weft get` for the demo's resources, as stored by
// the control plane, in every output format.
func TestGetOutput(t *testing.T) {
	created := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	nowFunc = func() time.Time { return created.Add(90 * time.Minute) }
	defer func() { nowFunc = time.Now }()
	data, err := os.ReadFile("../demo/config/services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	route, err := os.ReadFile("../demo/config/catalog-canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := resource.DecodeYAML("demo", append(append(data, []byte("\n---\n")...), route...))
	if err != nil {
		t.Fatal(err)
	}
	items := map[string][]json.RawMessage{}
	for _, o := range objs {
		o.SetCreationTimestamp(metaTime(created))
		k, _ := resource.KindOf(o)
		b, _ := json.Marshal(o)
		items[k.Name] = append(items[k.Name], b)
	}
	for _, kind := range []string{"Service", "HTTPRoute"} {
		k, _ := resource.LookupKind(kind)
		for _, format := range []string{"table", "yaml", "json"} {
			var out bytes.Buffer
			if err := printObjects(&out, k, items[kind], format, false); err != nil {
				t.Fatal(err)
			}
			golden(t, "get-"+k.Plural+"-"+format, out.Bytes())
		}
	}
	var out bytes.Buffer
	k, _ := resource.LookupKind("services")
	if err := printObjects(&out, k, nil, "table", false); err != nil || out.String() != "No services found.\n" {
		t.Fatalf("empty list: %q %v", out.String(), err)
	}
}

func TestUnknownKind(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Main([]string{"get", "pods"}, &out, &errOut)
	if code != 1 || !bytes.Contains(errOut.Bytes(), []byte(`unknown resource kind "pods"`)) {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
}

func TestUnreachableControlPlane(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Main([]string{"--server", "http://127.0.0.1:1", "get", "services"}, &out, &errOut)
	if code != 1 || !bytes.Contains(errOut.Bytes(), []byte("cannot reach the control plane at http://127.0.0.1:1")) ||
		!bytes.Contains(errOut.Bytes(), []byte("weft control")) {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
}

// TestGetTrafficOutput renders routes and policies with the status the
// control plane computes, including what it cannot honour.
func TestGetTrafficOutput(t *testing.T) {
	created := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	nowFunc = func() time.Time { return created.Add(90 * time.Minute) }
	defer func() { nowFunc = time.Now }()
	data, err := os.ReadFile("testdata/traffic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := resource.DecodeYAML("traffic", data)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		if err := resource.Validate(o); err != nil {
			t.Fatal(err)
		}
		o.SetCreationTimestamp(metaTime(created.Add(time.Duration(i) * time.Second)))
		o.SetGeneration(1)
	}
	st, err := model.FromObjects(objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := status.Compute(st, nil)
	items := map[string][]json.RawMessage{}
	for _, o := range objs {
		rep.Fill(o, nil, created.Add(time.Minute))
		k, _ := resource.KindOf(o)
		b, _ := json.Marshal(o)
		items[k.Name] = append(items[k.Name], b)
	}
	for _, kind := range []string{"HTTPRoute", "GRPCRoute", "TCPRoute", "TrafficPolicy"} {
		k, _ := resource.LookupKind(kind)
		for _, format := range []string{"table", "yaml"} {
			var out bytes.Buffer
			if err := printObjects(&out, k, items[kind], format, format == "yaml"); err != nil {
				t.Fatal(err)
			}
			golden(t, "traffic-"+k.Plural+"-"+format, out.Bytes())
		}
	}
}

// keySets answers as the control plane's JWKS fetcher would.
type keySets map[string]jwks.State

func (k keySets) State(uri string) (jwks.State, bool) {
	s, ok := k[uri]
	return s, ok
}

// TestGetRequestAuthnOutput renders RequestAuthentications with the state
// of their key sets: fetched, stale (failing, serving the keys fetched
// before), failed (never fetched), not fetched yet, and inline.
func TestGetRequestAuthnOutput(t *testing.T) {
	created := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	now := created.Add(90 * time.Minute)
	nowFunc = func() time.Time { return now }
	defer func() { nowFunc = time.Now }()
	const ec = `{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}`
	objs, err := resource.DecodeYAML("shop", []byte(`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: users}
spec:
  targetRef: {name: catalog}
  jwtRules:
  - {issuer: https://idp.example, jwksUri: https://idp.example/jwks.json}
  - {issuer: https://partner.example, jwks: '{"keys":[`+ec+`]}'}
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: partners}
spec:
  jwtRules:
  - {issuer: https://idp.example, jwksUri: https://idp.example/jwks.json}
  - {issuer: https://legacy.example, jwksUri: https://legacy.example/keys}
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: new, namespace: billing}
spec:
  jwtRules:
  - {issuer: https://down.example, jwksUri: https://down.example/keys}
  - {issuer: https://soon.example, jwksUri: https://soon.example/keys}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		if err := resource.Validate(o); err != nil {
			t.Fatal(err)
		}
		o.SetCreationTimestamp(metaTime(created.Add(time.Duration(i) * time.Second)))
		o.SetGeneration(1)
	}
	st, err := model.FromObjects(objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := `{"keys":[` + ec + `]}`
	rep := status.Compute(st, keySets{
		"https://idp.example/jwks.json": {Set: set, Keys: 1, Fetched: now.Add(-2 * time.Minute), NextAttempt: now.Add(3 * time.Minute)},
		"https://legacy.example/keys": {Set: set, Keys: 1, Fetched: now.Add(-20 * time.Minute), Err: "status 503 Service Unavailable",
			FailingSince: now.Add(-15 * time.Minute), NextAttempt: now.Add(time.Minute)},
		"https://down.example/keys": {Err: `Get "https://down.example/keys": dial tcp 192.0.2.1:443: connect: connection refused`,
			FailingSince: created, NextAttempt: now.Add(4 * time.Minute)},
	})
	k, _ := resource.LookupKind("RequestAuthentication")
	var items []json.RawMessage
	for _, o := range objs {
		if _, ok := o.(*v1alpha1.RequestAuthentication); !ok {
			continue
		}
		rep.Fill(o, nil, created.Add(time.Minute))
		b, _ := json.Marshal(o)
		items = append(items, b)
	}
	for _, format := range []string{"table", "yaml"} {
		var out bytes.Buffer
		if err := printObjects(&out, k, items, format, false); err != nil {
			t.Fatal(err)
		}
		golden(t, "get-requestauthentications-"+format, out.Bytes())
	}
}
