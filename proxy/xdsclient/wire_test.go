package xdsclient_test

import (
	"bytes"
	"strings"
	"testing"

	corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/proxy/xdsclient"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
)

func TestEncodeRequest(t *testing.T) {
	meta := map[string]any{"weft.namespace": "shop", "weft.labels": map[string]any{"app": "cart"}}
	tests := []struct {
		name string
		in   xdsclient.TestRequest
		want *discoverypb.DiscoveryRequest
	}{{
		name: "first request wildcard with node",
		in: xdsclient.TestRequest{
			TypeURL: clusterType,
			Node: &xdsclient.Node{ID: "cart-1.shop", Cluster: "cart", Metadata: meta,
				UserAgentName: "weft-proxy", UserAgentVersion: "0.1.0"},
		},
		want: &discoverypb.DiscoveryRequest{
			TypeUrl: clusterType,
			Node: &corepb.Node{Id: "cart-1.shop", Cluster: "cart", Metadata: mustStruct(t, meta),
				UserAgentName:        "weft-proxy",
				UserAgentVersionType: &corepb.Node_UserAgentVersion{UserAgentVersion: "0.1.0"}},
		},
	}, {
		name: "ack with names",
		in:   xdsclient.TestRequest{Version: "3", Names: []string{"a", "b"}, TypeURL: clusterType, Nonce: "7"},
		want: &discoverypb.DiscoveryRequest{VersionInfo: "3", ResourceNames: []string{"a", "b"}, TypeUrl: clusterType, ResponseNonce: "7"},
	}, {
		name: "nack",
		in:   xdsclient.TestRequest{Version: "2", TypeURL: listenerType, Nonce: "8", NackMessage: "listener outbound: bad port"},
		want: &discoverypb.DiscoveryRequest{VersionInfo: "2", TypeUrl: listenerType, ResponseNonce: "8",
			ErrorDetail: &statuspb.Status{Code: 3, Message: "listener outbound: bad port"}},
	}, {
		name: "empty node",
		in:   xdsclient.TestRequest{TypeURL: clusterType, Node: &xdsclient.Node{}},
		want: &discoverypb.DiscoveryRequest{TypeUrl: clusterType, Node: &corepb.Node{}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := xdsclient.EncodeRequest(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := new(discoverypb.DiscoveryRequest)
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(tt.want, got) {
				t.Errorf("request mismatch:\ngot:  %v\nwant: %v", prototext.Format(got), prototext.Format(tt.want))
			}
		})
	}
}

func TestEncodeNodeMetadata(t *testing.T) {
	nested := map[string]any{}
	deep := nested
	for range 40 {
		next := map[string]any{}
		deep["x"] = next
		deep = next
	}
	tests := []struct {
		name    string
		in      map[string]any
		want    map[string]any // as structpb.NewStruct takes it
		wantErr string
	}{{
		name: "scalars",
		in:   map[string]any{"s": "v", "f": 1.5, "t": true, "n": nil, "i": 8080, "u": uint32(7), "empty": ""},
		want: map[string]any{"s": "v", "f": 1.5, "t": true, "n": nil, "i": 8080, "u": 7, "empty": ""},
	}, {
		name: "nested",
		in: map[string]any{
			"weft.inbound": []any{map[string]any{"port": 15006.0, "app_port": 8080.0, "protocol": "HTTP"}},
			"weft.labels":  map[string]string{"app": "cart", "version": "v2"},
			"names":        []string{"a", "b"},
			"empty_list":   []any{},
			"empty_struct": map[string]any{},
		},
		want: map[string]any{
			"weft.inbound": []any{map[string]any{"port": 15006.0, "app_port": 8080.0, "protocol": "HTTP"}},
			"weft.labels":  map[string]any{"app": "cart", "version": "v2"},
			"names":        []any{"a", "b"},
			"empty_list":   []any{},
			"empty_struct": map[string]any{},
		},
	}, {
		name: "empty",
		in:   map[string]any{},
		want: map[string]any{},
	}, {
		name:    "unsupported type",
		in:      map[string]any{"ch": []any{1, make(chan int)}},
		wantErr: "ch: [1]: unsupported type chan int",
	}, {
		name:    "invalid utf-8",
		in:      map[string]any{"k": "\xff"},
		wantErr: "not valid UTF-8",
	}, {
		name:    "too deep",
		in:      nested,
		wantErr: "nested deeper than 32 levels",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := xdsclient.EncodeRequest(xdsclient.TestRequest{TypeURL: clusterType, Node: &xdsclient.Node{ID: "n", Metadata: tt.in}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := new(discoverypb.DiscoveryRequest)
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatal(err)
			}
			if want := mustStruct(t, tt.want); !proto.Equal(want, got.GetNode().GetMetadata()) {
				t.Errorf("metadata mismatch:\ngot:  %v\nwant: %v", prototext.Format(got.GetNode().GetMetadata()), prototext.Format(want))
			}
		})
	}
}

// The client rejects bad metadata when it is built, not when it connects.
func TestNewValidates(t *testing.T) {
	handler := xdsclient.HandlerFunc(func(string, string, [][]byte) error { return nil })
	tests := []struct {
		name    string
		opts    xdsclient.Options
		wantErr string
	}{
		{"no server", xdsclient.Options{Handler: handler}, "xdsclient: server address"},
		{"no port", xdsclient.Options{Server: "cp.weft", Handler: handler}, "xdsclient: server address"},
		{"no host", xdsclient.Options{Server: ":15010", Handler: handler}, "needs a host and a port"},
		{"empty port", xdsclient.Options{Server: "cp:", Handler: handler}, "needs a host and a port"},
		{"no handler", xdsclient.Options{Server: "cp:15010"}, "xdsclient: Options.Handler is required"},
		{"bad metadata", xdsclient.Options{Server: "cp:15010", Handler: handler,
			Node: xdsclient.Node{Metadata: map[string]any{"x": struct{}{}}}}, "xdsclient: node: metadata: x: unsupported type struct {}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := xdsclient.New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	if _, err := xdsclient.New(xdsclient.Options{Server: "cp:15010", Handler: handler}); err != nil {
		t.Fatalf("valid options: %v", err)
	}
}

func TestDecodeResponse(t *testing.T) {
	full := &discoverypb.DiscoveryResponse{
		VersionInfo: "42",
		Resources: []*anypb.Any{
			{TypeUrl: clusterType, Value: []byte("cluster-a")},
			{TypeUrl: clusterType, Value: nil},
			{TypeUrl: listenerType, Value: []byte{0, 1, 2}},
		},
		Canary:       true,
		TypeUrl:      clusterType,
		Nonce:        "n-1",
		ControlPlane: &corepb.ControlPlane{Identifier: "weft-cp-0"},
	}
	tests := []struct {
		name string
		in   []byte
		want xdsclient.DecodedResponse
	}{{
		name: "all fields",
		in:   mustMarshal(t, full),
		want: xdsclient.DecodedResponse{Version: "42", TypeURL: clusterType, Nonce: "n-1", Resources: []xdsclient.DecodedAny{
			{TypeURL: clusterType, Value: []byte("cluster-a")},
			{TypeURL: clusterType},
			{TypeURL: listenerType, Value: []byte{0, 1, 2}},
		}},
	}, {
		name: "empty",
		in:   nil,
		want: xdsclient.DecodedResponse{},
	}, {
		name: "unknown fields skipped",
		in: func() []byte {
			b := protowire.AppendTag(nil, 99, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, 1)
			b = append(b, mustMarshal(t, &discoverypb.DiscoveryResponse{Nonce: "x"})...)
			return b
		}(),
		want: xdsclient.DecodedResponse{Nonce: "x"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsclient.DecodeResponse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !responsesEqual(tt.want, got) {
				t.Errorf("response mismatch:\ngot:  %+v\nwant: %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeResponseErrors(t *testing.T) {
	valid := mustMarshal(t, &discoverypb.DiscoveryResponse{VersionInfo: "1", TypeUrl: clusterType})
	tests := []struct {
		name string
		in   []byte
	}{
		{"truncated", valid[:len(valid)-1]},
		{"bad tag", []byte{0x80}},
		{"field zero", []byte{0x00, 0x00}},
		{"version as varint", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 5)},
		{"invalid utf-8 nonce", protowire.AppendString(protowire.AppendTag(nil, 5, protowire.BytesType), "\xc3")},
		{"resource not bytes", protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1)},
		{"bad any", protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0x0a, 0x05, 'a'})},
		{"end group", protowire.AppendTag(nil, 7, protowire.EndGroupType)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := xdsclient.DecodeResponse(tt.in); err == nil {
				t.Fatalf("DecodeResponse succeeded with %+v, want an error", got)
			}
		})
	}
}

// FuzzDecodeResponse checks that the decoder never panics and, when both it
// and the generated code accept an input, that they agree.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte{})
	f.Add(mustMarshal(f, &discoverypb.DiscoveryResponse{VersionInfo: "1", TypeUrl: clusterType, Nonce: "1",
		Resources: []*anypb.Any{{TypeUrl: clusterType, Value: []byte{0x0a, 0x01, 'c'}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := xdsclient.DecodeResponse(b)
		ref := new(discoverypb.DiscoveryResponse)
		if err != nil || proto.Unmarshal(b, ref) != nil {
			return
		}
		if got.Version != ref.GetVersionInfo() || got.TypeURL != ref.GetTypeUrl() || got.Nonce != ref.GetNonce() {
			t.Fatalf("decoded %q/%q/%q, generated code %q/%q/%q", got.Version, got.TypeURL, got.Nonce,
				ref.GetVersionInfo(), ref.GetTypeUrl(), ref.GetNonce())
		}
		if len(got.Resources) != len(ref.GetResources()) {
			t.Fatalf("decoded %d resources, generated code %d", len(got.Resources), len(ref.GetResources()))
		}
		for i, r := range ref.GetResources() {
			if got.Resources[i].TypeURL != r.GetTypeUrl() || !bytes.Equal(got.Resources[i].Value, r.GetValue()) {
				t.Fatalf("resource %d differs from the generated code's", i)
			}
		}
	})
}

func responsesEqual(a, b xdsclient.DecodedResponse) bool {
	if a.Version != b.Version || a.TypeURL != b.TypeURL || a.Nonce != b.Nonce || len(a.Resources) != len(b.Resources) {
		return false
	}
	for i := range a.Resources {
		if a.Resources[i].TypeURL != b.Resources[i].TypeURL || !bytes.Equal(a.Resources[i].Value, b.Resources[i].Value) {
			return false
		}
	}
	return true
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
