package xdsresource_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

var update = flag.Bool("update", false, "rewrite the seed corpus under testdata/fuzz")

// Each decoder under a common signature.
var (
	decodeListener = func(b []byte) (any, error) { return xdsresource.DecodeListener(b) }
	decodeRoutes   = func(b []byte) (any, error) { return xdsresource.DecodeRouteConfiguration(b) }
	decodeCluster  = func(b []byte) (any, error) { return xdsresource.DecodeCluster(b) }
	decodeEndpoint = func(b []byte) (any, error) { return xdsresource.DecodeClusterLoadAssignment(b) }
	decodeSecret   = func(b []byte) (any, error) { return xdsresource.DecodeSecret(b) }
)

// checkCanonical checks that the decoder reads b as the generated code
// does: when proto.Unmarshal accepts b into m, decoding b and decoding the
// canonical re-encoding of m must agree, in success and in value. This
// holds the decoder to protobuf's rules for repeated, merged, reordered and
// unknown fields, and for oneofs.
func checkCanonical(t *testing.T, b []byte, m proto.Message, decode func([]byte) (any, error)) {
	t.Helper()
	got, err := decode(b)
	if proto.Unmarshal(b, m) != nil {
		return
	}
	canon, merr := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if merr != nil {
		return
	}
	want, werr := decode(canon)
	switch {
	case (err == nil) != (werr == nil):
		t.Fatalf("decoding the input and its canonical form disagree:\ninput: %v\ncanonical: %v", err, werr)
	case err == nil:
		if g, w := dump(t, got), dump(t, want); g != w {
			t.Fatalf("decoding the input and its canonical form disagree:\ninput:\n%s\ncanonical:\n%s", g, w)
		}
	}
}

// fuzz runs a fuzz target: no input may make decode panic, and decode must
// agree with the generated code (checkCanonical) and with Decode.
func fuzz(f *testing.F, typeURL string, newMsg func() proto.Message, decode func([]byte) (any, error)) {
	f.Fuzz(func(t *testing.T, b []byte) {
		checkCanonical(t, b, newMsg(), decode)
		v, err := decode(b)
		name, dv, derr := xdsresource.Decode(typeURL, b)
		if (err == nil) != (derr == nil) || (err == nil && dump(t, v) != dump(t, dv)) {
			t.Fatalf("Decode disagrees: %v / %v", err, derr)
		}
		if err == nil && name == "" {
			t.Fatalf("valid resource without a name")
		}
	})
}

func FuzzDecodeListener(f *testing.F) {
	fuzz(f, xdsresource.ListenerType, func() proto.Message { return &listenerv3.Listener{} }, decodeListener)
}

func FuzzDecodeRouteConfiguration(f *testing.F) {
	fuzz(f, xdsresource.RouteType, func() proto.Message { return &routev3.RouteConfiguration{} }, decodeRoutes)
}

func FuzzDecodeCluster(f *testing.F) {
	fuzz(f, xdsresource.ClusterType, func() proto.Message { return &clusterv3.Cluster{} }, decodeCluster)
}

func FuzzDecodeClusterLoadAssignment(f *testing.F) {
	fuzz(f, xdsresource.EndpointType, func() proto.Message { return &endpointv3.ClusterLoadAssignment{} }, decodeEndpoint)
}

func FuzzDecodeSecret(f *testing.F) {
	fuzz(f, xdsresource.SecretType, func() proto.Message { return &tlsv3.Secret{} }, decodeSecret)
}

// seeds are the resources of the checked-in seed corpus, by fuzz target
// and file name.
func seeds() map[string]map[string]proto.Message {
	return map[string]map[string]proto.Message{
		"FuzzDecodeListener": {
			"hcm-rds": hcmListener(nil),
			"hcm-inline": hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: fullRoutes()}
			}),
			"tcp-proxy":       tcpListener(nil),
			"mtls-strict":     strictListener(nil),
			"mtls-permissive": permissiveListener(nil),
			"tcp-weighted":    weightedTCPListener(),
			"http-filters":    filtersListener(),
			"authz":           authzListener(nil),
			"tcp-rbac": networkRBACListener(&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
				"ns/allow/rule-0": {
					Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 5432}}},
					Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_DirectRemoteIp{
						DirectRemoteIp: &corev3.CidrRange{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(8)}}}},
				},
			}}),
		},
		"FuzzDecodeRouteConfiguration": {
			"full":    fullRoutes(),
			"base":    baseRoutes(),
			"traffic": trafficRoutes(),
		},
		"FuzzDecodeCluster": {
			"eds-http2": edsCluster(),
			"eds-mtls":  mtlsCluster(nil),
			"traffic":   trafficCluster(),
			"static": &clusterv3.Cluster{
				Name:                 "inbound|8080",
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
				LoadAssignment:       fullLoadAssignment(),
			},
		},
		"FuzzDecodeClusterLoadAssignment": {
			"full": fullLoadAssignment(),
		},
		"FuzzDecodeSecret": {
			"rootca": rootCASecret(),
			"rootca-bundle": modTrustedCA(&corev3.DataSource{Specifier: &corev3.DataSource_InlineString{
				InlineString: "# weft test root CA\n" + rootCAPEM,
			}}),
		},
	}
}

// TestFuzzSeeds checks that the seed corpus holds the resources of seeds,
// valid ones that reach deep into the decoders; with -update it first
// (re)writes them. Other files there are inputs the fuzzer found.
func TestFuzzSeeds(t *testing.T) {
	decoders := map[string]func([]byte) (any, error){
		"FuzzDecodeListener":              decodeListener,
		"FuzzDecodeRouteConfiguration":    decodeRoutes,
		"FuzzDecodeCluster":               decodeCluster,
		"FuzzDecodeClusterLoadAssignment": decodeEndpoint,
		"FuzzDecodeSecret":                decodeSecret,
	}
	for target, files := range seeds() {
		for name, m := range files {
			path := filepath.Join("testdata", "fuzz", target, name)
			if *update {
				content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(marshal(t, m))) + ")\n"
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := readSeed(path)
			if err != nil {
				t.Errorf("%v (run go test -run TestFuzzSeeds -update)", err)
				continue
			}
			if _, err := decoders[target](b); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
	}
}

// readSeed reads a seed corpus file of one []byte value.
func readSeed(path string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	const header, prefix, suffix = "go test fuzz v1\n", "[]byte(", ")\n"
	s, ok := strings.CutPrefix(string(content), header+prefix)
	if !ok {
		return nil, errors.New("not a go test fuzz v1 file of one []byte")
	}
	s, ok = strings.CutSuffix(s, suffix)
	if !ok {
		return nil, errors.New("not a go test fuzz v1 file of one []byte")
	}
	v, err := strconv.Unquote(s)
	return []byte(v), err
}
