package resource_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
)

const issueExample = `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-readers, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog, port: 80}
  rules:
  - from:
    - source: {principals: ["spiffe://weft.local/ns/shop/sa/web", "*/sa/admin"], notPrincipals: [], namespaces: [shop], notNamespaces: [], ipBlocks: ["10.0.0.0/8"], notIpBlocks: [], remoteIpBlocks: [], notRemoteIpBlocks: [], requestPrincipals: ["https://issuer.example/*"], notRequestPrincipals: []}
    to:
    - operation: {methods: [GET], notMethods: [], hosts: ["catalog.shop"], notHosts: [], ports: ["8080"], notPorts: [], paths: ["/items", "/items/*", "*.json"], notPaths: ["/admin*"]}
    when:
    - {key: "request.headers[x-role]", values: [admin], notValues: []}
    - {key: "request.auth.claims[groups]", values: [ops]}
`

func TestAuthorizationPolicyDefaults(t *testing.T) {
	o := decodeOne(t, issueExample)
	if err := resource.Validate(o); err != nil {
		t.Fatal(err)
	}
	p := o.(*v1alpha1.AuthorizationPolicy)
	if p.Spec.Action != "ALLOW" || p.Spec.TargetRef.Kind != "Service" {
		t.Errorf("defaults: %+v", p.Spec)
	}
	if !resource.AuthzRuleL7(p.Spec.Rules[0]) {
		t.Error("rule with paths is not L7")
	}
	l4 := v1alpha1.AuthzRule{From: []v1alpha1.AuthzFrom{{Source: v1alpha1.AuthzSource{Namespaces: []string{"a"}}}},
		When: []v1alpha1.AuthzCondition{{Key: "destination.port", Values: []string{"80"}}}}
	if resource.AuthzRuleL7(l4) {
		t.Error("L4 rule reported L7")
	}
}

func TestAuthorizationPolicyValidation(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"action: DENY", "spec.rules: Required value"},
		{"action: MAYBE", `spec.action: Unsupported value: "MAYBE"`},
		{"action: CUSTOM", "spec.provider.name: Required value"},
		{"provider: {name: opa}", "spec.provider: Forbidden: only with action CUSTOM"},
		{"targetRef: {kind: HTTPRoute, name: x}", `spec.targetRef.kind: Unsupported value: "HTTPRoute"`},
		{"targetRef: {name: x, port: 70000}", "spec.targetRef.port"},
		{"rules: [{from: [{source: {}}]}]", "spec.rules[0].from[0].source: Required value"},
		{"rules: [{to: [{operation: {}}]}]", "spec.rules[0].to[0].operation: Required value"},
		{`rules: [{from: [{source: {principals: ["a*b"]}}]}]`, "spec.rules[0].from[0].source.principals[0]: Invalid value"},
		{`rules: [{from: [{source: {principals: ["*a*"]}}]}]`, "spec.rules[0].from[0].source.principals[0]: Invalid value"},
		{`rules: [{from: [{source: {ipBlocks: ["10.0.0.0/33"]}}]}]`, "spec.rules[0].from[0].source.ipBlocks[0]: Invalid value"},
		{`rules: [{from: [{source: {namespaces: ["Shop"]}}]}]`, "spec.rules[0].from[0].source.namespaces[0]: Invalid value"},
		{`rules: [{from: [{source: {requestPrincipals: ["noslash"]}}]}]`, "spec.rules[0].from[0].source.requestPrincipals[0]: Invalid value"},
		{`rules: [{to: [{operation: {ports: ["http"]}}]}]`, "spec.rules[0].to[0].operation.ports[0]: Invalid value"},
		{`rules: [{to: [{operation: {paths: ["items"]}}]}]`, "spec.rules[0].to[0].operation.paths[0]: Invalid value"},
		{`rules: [{to: [{operation: {methods: ["get"]}}]}]`, "spec.rules[0].to[0].operation.methods[0]: Invalid value"},
		{`rules: [{when: [{key: request.body, values: [x]}]}]`, "spec.rules[0].when[0].key: Invalid value"},
		{`rules: [{when: [{key: "request.headers[x-a][b]", values: [x]}]}]`, "spec.rules[0].when[0].key: Invalid value"},
		{`rules: [{when: [{key: "request.headers[x-a]"}]}]`, "spec.rules[0].when[0].values: Required value"},
		{`rules: [{when: [{key: source.ip, values: [nope]}]}]`, "spec.rules[0].when[0].values[0]: Invalid value"},
		{`rules: [{when: [{key: destination.port, notValues: ["0"]}]}]`, "spec.rules[0].when[0].notValues[0]: Invalid value"},
	} {
		o, err := resource.DecodeYAML("t", []byte("apiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  "+tc.spec+"\n"))
		if err != nil {
			t.Errorf("%s: decode: %v", tc.spec, err)
			continue
		}
		err = resource.Validate(o[0])
		var ve *resource.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.spec, err, tc.want)
		}
	}
	// Accepted shapes.
	for _, spec := range []string{
		"{}", // ALLOW without rules: denies the target
		"{action: DENY, rules: [{}]}",
		"{action: AUDIT}",
		"{action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: [/api/*]}}]}]}",
		`{rules: [{when: [{key: "request.auth.claims[realm][role]", values: [admin]}, {key: request.auth.principal, values: ["*"]}, {key: connection.sni, values: ["*.shop"]}, {key: remote.ip, values: ["2001:db8::/32"]}]}]}`,
	} {
		o := decodeOne(t, "apiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec: "+spec+"\n")
		if err := resource.Validate(o); err != nil {
			t.Errorf("%s: %v", spec, err)
		}
	}
	// Strict decoding.
	if _, err := resource.DecodeYAML("t", []byte("apiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {rules: [{from: [{source: {principal: [a]}}]}]}\n")); err == nil || !strings.Contains(err.Error(), "principal") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestRequestAuthentication(t *testing.T) {
	o := decodeOne(t, `apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: users, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog}
  jwtRules:
  - issuer: https://issuer.example
    audiences: [catalog]
    jwksUri: https://issuer.example/jwks.json
    fromHeaders: [{name: Authorization, prefix: "Bearer "}]
    fromParams: [access_token]
    outputClaimToHeaders: [{header: x-user, claim: sub}]
`)
	if err := resource.Validate(o); err != nil {
		t.Fatal(err)
	}
	r := o.(*v1alpha1.RequestAuthentication).Spec.JWTRules[0]
	if strings.Join(r.Algorithms, ",") != "RS256,ES256" || r.ClockSkew != "60s" {
		t.Errorf("defaults: %+v", r)
	}
	for _, tc := range []struct{ rule, want string }{
		{"{issuer: a}", "spec.jwtRules[0].jwksUri: Required value"},
		{`{issuer: a, jwks: '{"keys":[]}', jwksUri: "https://x"}`, "spec.jwtRules[0].jwks: Forbidden"},
		{`{issuer: a, jwks: 'nope'}`, "spec.jwtRules[0].jwks: Invalid value"},
		{`{issuer: a, jwksUri: "ftp://x/k"}`, "spec.jwtRules[0].jwksUri: Invalid value"},
		{`{issuer: a, jwksUri: "https://x/k", algorithms: [HS256]}`, "spec.jwtRules[0].algorithms[0]: Invalid value"},
		{`{issuer: a, jwksUri: "https://x/k", algorithms: [none]}`, "spec.jwtRules[0].algorithms[0]: Invalid value"},
		{`{issuer: a, jwksUri: "https://x/k", algorithms: [RS1]}`, "spec.jwtRules[0].algorithms[0]: Unsupported value"},
		{`{issuer: a, jwksUri: "https://x/k", clockSkew: soon}`, "spec.jwtRules[0].clockSkew: Invalid value"},
		{`{issuer: a, jwksUri: "https://x/k", fromHeaders: [{name: "a b"}]}`, "spec.jwtRules[0].fromHeaders[0].name: Invalid value"},
		{`{issuer: a, jwksUri: "https://x/k", outputClaimToHeaders: [{header: x, claim: ""}]}`, "spec.jwtRules[0].outputClaimToHeaders[0].claim: Invalid value"},
		{`{jwksUri: "https://x/k"}`, "spec.jwtRules[0].issuer: Required value"},
	} {
		os, err := resource.DecodeYAML("t", []byte("apiVersion: weft.dev/v1alpha1\nkind: RequestAuthentication\nmetadata: {name: r, namespace: shop}\nspec:\n  jwtRules: ["+tc.rule+"]\n"))
		if err != nil {
			t.Errorf("%s: decode: %v", tc.rule, err)
			continue
		}
		if err := resource.Validate(os[0]); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.rule, err, tc.want)
		}
	}
	empty := decodeOne(t, "apiVersion: weft.dev/v1alpha1\nkind: RequestAuthentication\nmetadata: {name: r}\nspec: {jwtRules: []}\n")
	if err := resource.Validate(empty); err == nil || !strings.Contains(err.Error(), "spec.jwtRules: Required value") {
		t.Errorf("empty jwtRules: %v", err)
	}
}

func TestMeshConfigAuthorization(t *testing.T) {
	o := decodeOne(t, `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  authorization:
    providers: [{name: opa, extAuthz: {service: "127.0.0.1:9191"}}]
`)
	if err := resource.Validate(o); err != nil {
		t.Fatal(err)
	}
	a := o.(*v1alpha1.MeshConfig).Spec.Authorization
	if a.DefaultAction != "ALLOW" || a.Providers[0].ExtAuthz.Timeout != "200ms" || a.Normalization.SlashEncoding != "REJECT" {
		t.Errorf("defaults: %+v %+v", a, a.Normalization)
	}
	bad := decodeOne(t, `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  authorization:
    defaultAction: AUDIT
    providers: [{name: opa, extAuthz: {service: "nope", timeout: 0s}}, {name: opa}]
    normalization: {slashEncoding: KEEP, trustedHops: -1}
`)
	err := resource.Validate(bad)
	for _, want := range []string{
		`spec.authorization.defaultAction: Unsupported value: "AUDIT"`,
		"spec.authorization.providers[0].extAuthz.service: Invalid value",
		"spec.authorization.providers[0].extAuthz.timeout: Invalid value",
		`spec.authorization.providers[1].name: Duplicate value: "opa"`,
		"spec.authorization.providers[1].extAuthz: Required value",
		`spec.authorization.normalization.slashEncoding: Unsupported value: "KEEP"`,
		"spec.authorization.normalization.trustedHops: Invalid value",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

func TestAuthzKinds(t *testing.T) {
	for name, want := range map[string]string{"authz": "AuthorizationPolicy", "ap": "AuthorizationPolicy",
		"authorizationpolicies": "AuthorizationPolicy", "ra": "RequestAuthentication", "requestauthentications": "RequestAuthentication"} {
		k, err := resource.LookupKind(name)
		if err != nil || k.Name != want {
			t.Errorf("LookupKind(%q) = %v, %v", name, k, err)
		}
	}
}
