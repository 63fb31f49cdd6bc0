package xdsresource_test

import (
	"encoding/json"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The tests build resources with the generated Envoy types, marshal them,
// and check what the decoder makes of the bytes. They are not linked into
// the proxy.

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return b
}

// mustAny wraps m in an Any; it panics on error, which only a nil m causes.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func routerHTTPFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	}
}

// listenerWith returns a listener whose only filter chain holds filter.
func listenerWith(name string, filter *listenerv3.Filter) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:         name,
		Address:      socketAddress("0.0.0.0", 15001),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{filter}}},
	}
}

func networkFilter(m proto.Message) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name:       "envoy.filters.network.test",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(m)},
	}
}

func regexMatcher(expr string) *matcherv3.RegexMatcher {
	return &matcherv3.RegexMatcher{Regex: expr}
}

// dump renders a decoded value for comparison and failure messages: JSON
// shows every field, regular expressions as their source.
func dump(t testing.TB, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	return string(b)
}

// checkResult compares a decode result with what a test case expects:
// wantErr, a substring of the error, or the value want.
func checkResult(t *testing.T, got any, err error, want any, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil {
			t.Fatalf("got no error, want one containing %q; value:\n%s", wantErr, dump(t, got))
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("got error\n\t%v\nwant one containing\n\t%s", err, wantErr)
		}
		if !strings.HasPrefix(err.Error(), "xdsresource: ") {
			t.Fatalf("error %q lacks the package prefix", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if g, w := dump(t, got), dump(t, want); g != w {
		t.Fatalf("got\n%s\nwant\n%s", g, w)
	}
}
