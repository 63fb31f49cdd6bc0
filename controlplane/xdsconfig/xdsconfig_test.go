package xdsconfig_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	apiresource "github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/xdsconfig"
)

var update = flag.Bool("update", false, "rewrite golden files")

type validator interface{ Validate() error }

// TestGolden compiles each testdata case (resources.yaml, workloads.yaml)
// for the workload named in node.txt and compares the xDS resources with
// golden.json. Every generated resource must pass go-control-plane's
// Validate().
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/resources.yaml")
	for _, f := range files {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			st := loadState(t, dir)
			checkGolden(t, dir, st, readNode(t, dir))
		})
	}
}

// checkGolden generates the State's resources for the named workload and
// compares them (and the problems) with dir/golden.json.
func checkGolden(t *testing.T, dir string, st *model.State, node string) {
	t.Helper()
	var w *model.Workload
	for _, wl := range st.Workloads {
		if wl.Name == node {
			w = wl
		}
	}
	if w == nil {
		t.Fatalf("node %q not among the workloads", node)
	}
	gen := xdsconfig.NewGeneration(st)
	res := gen.ForNode(w)
	out := map[string]any{}
	for _, typ := range []resource.Type{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType, resource.SecretType} {
		var items []json.RawMessage
		for _, r := range res[typ] {
			if err := r.(validator).Validate(); err != nil {
				t.Errorf("%s %s fails Validate(): %v", typ, resourceName(r), err)
			}
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var canon bytes.Buffer
			if err := json.Indent(&canon, b, "", ""); err != nil {
				t.Fatal(err)
			}
			items = append(items, json.RawMessage(canon.Bytes()))
		}
		out[typ] = items
	}
	out["problems"] = gen.Problems()
	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join(dir, "golden.json")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(normalize(t, got), normalize(t, want)) {
		t.Errorf("generated config differs from %s (run go test ./controlplane/xdsconfig -update and review the diff):\n%s", golden, got)
	}
}

func resourceName(r types.Resource) string {
	return xdsName(r)
}

func xdsName(r types.Resource) string {
	type named interface{ GetName() string }
	type clustered interface{ GetClusterName() string }
	if n, ok := r.(named); ok {
		return n.GetName()
	}
	if c, ok := r.(clustered); ok {
		return c.GetClusterName()
	}
	return "?"
}

// normalize re-encodes JSON so formatting differences do not matter.
func normalize(t *testing.T, b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(v)
	return out
}

func loadState(t *testing.T, dir string) *model.State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "resources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := apiresource.DecodeYAML("resources.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := apiresource.Validate(o); err != nil {
			t.Fatal(err)
		}
	}
	wdata, err := os.ReadFile(filepath.Join(dir, "workloads.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var workloads []*model.Workload
	if err := yaml.Unmarshal(wdata, &workloads); err != nil {
		t.Fatal(err)
	}
	st, err := model.FromObjects(objs, workloads)
	if err != nil {
		t.Fatal(err)
	}
	if td, err := os.ReadFile(filepath.Join(dir, "trustdomain.txt")); err == nil {
		st.TrustDomain = string(bytes.TrimSpace(td))
		st.TrustBundle = []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	}
	return st
}

func readNode(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}

// TestRoutePrecedence checks the order of generated routes against the
// Gateway API's precedence rules.
func TestRoutePrecedence(t *testing.T) {
	st := loadState(t, "testdata/precedence")
	gen := xdsconfig.NewGeneration(st)
	res := gen.ForNode(st.Workloads[0])
	rc := res[resource.RouteType][0]
	b, _ := protojson.Marshal(rc)
	var parsed struct {
		VirtualHosts []struct {
			Name   string `json:"name"`
			Routes []struct {
				Name  string         `json:"name"`
				Match map[string]any `json:"match"`
			} `json:"routes"`
		} `json:"virtualHosts"`
	}
	if err := json.Unmarshal(b, &parsed); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, vh := range parsed.VirtualHosts {
		if vh.Name != "catalog.shop:80" {
			continue
		}
		for _, r := range vh.Routes {
			keys := make([]string, 0)
			for k := range r.Match {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			got = append(got, r.Name)
		}
	}
	want := []string{
		"shop/b-exact/rule/0",        // exact path
		"shop/a-regex/rule/0",        // regex path
		"shop/a-prefix/rule/1",       // longest prefix /api/v1
		"shop/a-prefix/rule/2",       // /api with method
		"shop/a-prefix/rule/3",       // /api with 2 headers
		"shop/b-older-prefix/rule/0", // /api with 1 header, older route
		"shop/a-prefix/rule/4",       // /api with 1 header, newer route
		"shop/a-prefix/rule/0",       // catch-all /
	}
	if len(got) != len(want) {
		t.Fatalf("routes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("route %d = %s, want %s (all: %v)", i, got[i], want[i], got)
		}
	}
}
