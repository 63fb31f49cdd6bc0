package zz

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/pkg/wellknown"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/proxy/authz"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

func TestGoldens(t *testing.T) {
	files, _ := filepath.Glob("../../../controlplane/xdsconfig/testdata/authz-*/golden.json")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var m map[string]json.RawMessage
		json.Unmarshal(b, &m)
		var ls []json.RawMessage
		json.Unmarshal(m["type.googleapis.com/envoy.config.listener.v3.Listener"], &ls)
		for _, raw := range ls {
			var l listenerv3.Listener
			if err := protojson.Unmarshal(raw, &l); err != nil {
				t.Errorf("%s: protojson: %v", f, err)
				continue
			}
			pb, _ := proto.Marshal(&l)
			dl, err := xdsresource.DecodeListener(pb)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			for _, c := range dl.FilterChains {
				if c.HTTP != nil && c.HTTP.Authz != nil {
					_, err := authz.Compile(c.HTTP.Authz, authz.Options{ExtAuthz: authz.NewExtAuthzClient(nil)})
					t.Logf("%s %s: order %v compile %v", filepath.Base(filepath.Dir(f)), dl.Name, c.HTTP.Authz.Order, err)
					if err != nil { t.Error(err) }
				}
				if c.TCP != nil && c.TCP.RBAC != nil {
					_, err := authz.CompileNetwork(c.TCP.RBAC)
					t.Logf("%s %s: tcp rbac compile %v", filepath.Base(filepath.Dir(f)), dl.Name, err)
					if err != nil { t.Error(err) }
				}
			}
		}
	}
}
