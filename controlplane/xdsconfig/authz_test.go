package xdsconfig_test

import (
	"testing"

	"github.com/weftmesh/weft/controlplane/xdsconfig"
)

func TestFilterJWKS(t *testing.T) {
	src := `{"keys":[
	 {"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"},
	 {"kty":"RSA","kid":"b","n":"AQAB","e":"AQAB","alg":"RS512"},
	 {"kty":"EC","crv":"P-256","kid":"c","x":"AA","y":"AA"},
	 {"kty":"EC","crv":"P-256","kid":"d","x":"AA","y":"AA","alg":"ES384"},
	 {"kty":"OKP","crv":"Ed25519","kid":"e","x":"AA"},
	 {"kty":"RSA","kid":"f","n":"AQAB","e":"AQAB","use":"enc"},
	 {"kty":"oct","kid":"g","k":"AA","alg":"HS256"}]}`
	for _, tc := range []struct {
		allowed []string
		want    string
	}{
		{[]string{"RS256", "ES256"}, `{"keys":[{"alg":"RS256","e":"AQAB","kid":"a","kty":"RSA","n":"AQAB"},{"alg":"ES256","crv":"P-256","kid":"c","kty":"EC","x":"AA","y":"AA"}]}`},
		// Two RSA algorithms: a key without alg is ambiguous and dropped.
		{[]string{"RS256", "RS512"}, `{"keys":[{"alg":"RS512","e":"AQAB","kid":"b","kty":"RSA","n":"AQAB"}]}`},
		{[]string{"EdDSA"}, `{"keys":[{"alg":"EdDSA","crv":"Ed25519","kid":"e","kty":"OKP","x":"AA"}]}`},
	} {
		if got := xdsconfig.FilterJWKS(src, tc.allowed); got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.allowed, got, tc.want)
		}
	}
	for _, bad := range []string{"", "nope", `{"keys":null}`} {
		if got := xdsconfig.FilterJWKS(bad, []string{"RS256"}); got != `{"keys":[]}` {
			t.Errorf("%q: %s", bad, got)
		}
	}
}
