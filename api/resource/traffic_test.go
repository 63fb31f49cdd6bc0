package resource_test

import (
	"errors"
	"strings"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
)

const httpHead = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: web, port: 80}]
  rules:
`

const grpcHead = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: interop, port: 9090}]
  rules:
`

const tcpHead = `apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec:
`

const policyHead = `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: p, namespace: shop}
spec:
`

// TestTrafficValidation lists accepted objects (no wants) and refused ones
// with the field paths every problem must name.
func TestTrafficValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		wants []string
	}{
		// HTTPRoute filters.
		{"header modifiers", httpHead + `  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-a, value: "1"}], add: [{name: x-b, value: "2"}], remove: [x-c]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-served-by, value: weft}]}
    backendRefs: [{name: web, port: 80}]
`, nil},
		{"header modifier duplicate and bad name", httpHead + `  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-a, value: "1"}], add: [{name: X-A, value: "2"}], remove: ["bad name", host]}
    backendRefs: [{name: web, port: 80}]
`, []string{
			"spec.rules[0].filters[0].requestHeaderModifier.add[0].name: Duplicate value",
			`spec.rules[0].filters[0].requestHeaderModifier.remove[0]: Invalid value: "bad name"`,
			`spec.rules[0].filters[0].requestHeaderModifier.remove[1]: Invalid value: "host"`}},
		{"header modifier without config", httpHead + `  - filters: [{type: RequestHeaderModifier}]
    backendRefs: [{name: web, port: 80}]
`, []string{"spec.rules[0].filters[0].requestHeaderModifier: Required value"}},
		{"config of another type", httpHead + `  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [x]}, urlRewrite: {hostname: a}}]
    backendRefs: [{name: web, port: 80}]
`, []string{"spec.rules[0].filters[0].urlRewrite: Forbidden"}},
		{"two header modifiers", httpHead + `  - filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {remove: [x]}}
    - {type: RequestHeaderModifier, requestHeaderModifier: {remove: [x-other]}}
    backendRefs: [{name: web, port: 80}]
`, []string{`spec.rules[0].filters[1].type: Duplicate value: "RequestHeaderModifier"`}},
		{"redirect", httpHead + `  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: new.example.com, port: 8443, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}
`, nil},
		{"redirect with backends and bad fields", httpHead + `  - matches: [{path: {type: Exact, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: ftp, statusCode: 304, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
    backendRefs: [{name: web, port: 80}]
`, []string{
			`spec.rules[0].filters[0].requestRedirect.scheme: Unsupported value: "ftp"`,
			"spec.rules[0].filters[0].requestRedirect.statusCode: Unsupported value: 304",
			"spec.rules[0].filters[0].requestRedirect.path.type: Invalid value: \"ReplacePrefixMatch\": ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
			"spec.rules[0].backendRefs: Forbidden"}},
		{"redirect and rewrite", httpHead + `  - filters:
    - {type: RequestRedirect, requestRedirect: {hostname: a.example}}
    - {type: URLRewrite, urlRewrite: {hostname: b.example}}
`, []string{"spec.rules[0].filters: Forbidden: RequestRedirect and URLRewrite cannot be used in the same rule"}},
		{"rewrite", httpHead + `  - matches: [{path: {type: PathPrefix, value: /api}}, {path: {type: PathPrefix, value: /v1}}]
    filters:
    - {type: URLRewrite, urlRewrite: {hostname: api.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}
    backendRefs: [{name: web, port: 80}]
  - filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /index.html}}}
    backendRefs: [{name: web, port: 80}]
`, nil},
		{"rewrite path without value", httpHead + `  - filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replacePrefixMatch: /x}}}
    backendRefs: [{name: web, port: 80}]
`, []string{"spec.rules[0].filters[0].urlRewrite.path.replaceFullPath: Required value",
			"spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch: Forbidden"}},
		{"mirrors", httpHead + `  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow2, port: 80}, percent: 5}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow3, port: 80}, fraction: {numerator: 1, denominator: 3}}}
    backendRefs: [{name: web, port: 80}]
`, nil},
		{"bad mirror", httpHead + `  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow}, percent: 101, fraction: {numerator: 5, denominator: 2}}}
    backendRefs: [{name: web, port: 80}]
`, []string{"spec.rules[0].filters[0].requestMirror.backendRef.port: Required value",
			"spec.rules[0].filters[0].requestMirror.percent: Invalid value: 101",
			"spec.rules[0].filters[0].requestMirror.fraction: Forbidden",
			"spec.rules[0].filters[0].requestMirror.fraction.numerator: Invalid value: 5"}},
		{"cors refused", httpHead + `  - filters: [{type: CORS, cors: {allowOrigins: ["https://a.example"]}}]
    backendRefs: [{name: web, port: 80}]
`, []string{`spec.rules[0].filters[0].type: Unsupported value: "CORS"`}},
		{"backend filters refused", httpHead + `  - backendRefs: [{name: web, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [x]}}]}]
`, []string{"spec.rules[0].backendRefs[0].filters: Forbidden"}},
		{"retry and timeouts", httpHead + `  - retry: {codes: [500, 503], attempts: 3, backoff: 100ms}
    timeouts: {request: 10s, backendRequest: 2s}
    backendRefs: [{name: web, port: 80}]
`, nil},
		{"bad retry and timeouts", httpHead + `  - retry: {codes: [200, 503, 503], attempts: -1, backoff: 1 second}
    timeouts: {request: 1s, backendRequest: 2s}
    backendRefs: [{name: web, port: 80}]
`, []string{"spec.rules[0].retry.codes[0]: Invalid value: 200", "spec.rules[0].retry.codes[2]: Duplicate value: 503",
			"spec.rules[0].retry.attempts: Invalid value: -1", "spec.rules[0].retry.backoff: Invalid value",
			"spec.rules[0].timeouts.backendRequest: Invalid value: \"2s\": must not be longer than timeouts.request"}},
		{"backendRequest with no request timeout", httpHead + `  - timeouts: {request: 0s, backendRequest: 2s}
    backendRefs: [{name: web, port: 80}]
`, nil},
		{"duplicate rule names", httpHead + `  - name: a
    backendRefs: [{name: web, port: 80}]
  - name: a
    backendRefs: [{name: web, port: 80}]
`, []string{`spec.rules[1].name: Duplicate value: "a"`}},

		// GRPCRoute.
		{"grpc route", grpcHead + `  - name: echo
    matches:
    - method: {service: grpc.testing.TestService, method: UnaryCall}
    - method: {service: grpc.testing.TestService}
      headers: [{name: x-user, value: alice}]
    - method: {type: RegularExpression, service: "grpc\\..*", method: "Unary.*"}
    filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: b}]}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 9090}, percent: 10}}
    backendRefs: [{name: interop-v1, port: 9090, weight: 90}, {name: interop-v2, port: 9090, weight: 10}]
`, nil},
		{"grpc bad matches", grpcHead + `  - matches:
    - method: {}
    - method: {service: "bad/service", method: "1x"}
    - method: {type: RegularExpression, method: "(["}
    - method: {type: Prefix, service: a}
    backendRefs: [{name: interop, port: 9090}]
`, []string{"spec.rules[0].matches[0].method: Required value",
			`spec.rules[0].matches[1].method.service: Invalid value: "bad/service"`,
			`spec.rules[0].matches[1].method.method: Invalid value: "1x"`,
			"spec.rules[0].matches[2].method.method: Invalid value",
			`spec.rules[0].matches[3].method.type: Unsupported value: "Prefix"`}},
		{"grpc hostnames and redirect refused", strings.Replace(grpcHead, "  rules:", "  hostnames: [a.example]\n  rules:", 1) + `  - filters: [{type: ExtensionRef, extensionRef: {group: x.io, kind: X, name: x}}]
    backendRefs: [{name: interop, port: 9090}]
`, []string{"spec.hostnames: Forbidden", `spec.rules[0].filters[0].type: Unsupported value: "ExtensionRef"`}},
		{"grpc gateway parent", strings.Replace(grpcHead, "kind: Service", "kind: Gateway", 1) + `  - backendRefs: [{name: interop, port: 9090}]
`, []string{`spec.parentRefs[0].kind: Unsupported value: "Gateway"`}},

		// TCPRoute.
		{"tcp route", tcpHead + `  parentRefs: [{kind: Service, name: db, port: 5432}]
  rules:
  - backendRefs: [{name: db-a, port: 5432, weight: 80}, {name: db-b, port: 5432, weight: 20}]
`, nil},
		{"tcp route v1", strings.Replace(tcpHead, "v1alpha2", "v1", 1) + `  parentRefs: [{kind: Service, name: db, sectionName: pg}]
  rules:
  - backendRefs: [{name: db-a, port: 5432}]
`, nil},
		{"tcp route without port or rule", tcpHead + `  parentRefs: [{kind: Service, name: db}]
`, []string{"spec.parentRefs[0].port: Required value", "spec.rules: Invalid value: 0"}},
		{"tcp route two rules, no backends", tcpHead + `  parentRefs: [{kind: Service, name: db, port: 5432}]
  rules:
  - backendRefs: []
  - backendRefs: [{name: db-a}]
`, []string{"spec.rules: Invalid value: 2", "spec.rules[0].backendRefs: Required value", "spec.rules[1].backendRefs[0].port: Required value"}},

		// TrafficPolicy.
		{"policy everything", policyHead + `  targetRef: {kind: Service, name: catalog, port: 80}
  loadBalancer: {type: RING_HASH, hash: {cookie: {name: session, ttl: 1h}}, localityAware: false}
  connectionPool: {maxConnections: 10, maxPendingRequests: 10, maxRequests: 10, maxRetries: 3, connectTimeout: 1s, idleTimeout: 30s}
  outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 3, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 50}
  retries:
    attempts: 2
    perTryTimeout: 2s
    retryOn: [5xx, reset]
    retriableStatusCodes: [503]
    backoff: {baseInterval: 25ms, maxInterval: 250ms}
    budget: {percent: 20, minRetriesPerSecond: 10}
    retryNonIdempotent: true
    maxBodyBytes: 65536
  timeouts: {request: 15s}
  rateLimit: {requestsPerSecond: 100}
  faults:
    delay: {fixedDelay: 2s, percent: 0.5}
    abort: {grpcStatus: UNAVAILABLE, percent: 5}
`, nil},
		{"policy on a route rule", policyHead + `  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: web, sectionName: api}
  retries: {attempts: 1}
  rateLimit: {requestsPerSecond: 5, burst: 10}
`, nil},
		{"policy empty", policyHead + `  targetRef: {kind: Service, name: catalog}
`, []string{"spec: Required value"}},
		{"policy cluster fields on a route", policyHead + `  targetRef: {kind: GRPCRoute, name: g, port: 80}
  loadBalancer: {type: RANDOM}
  connectionPool: {maxConnections: 1}
  outlierDetection: {}
  retries: {budget: {percent: 10}}
`, []string{"spec.loadBalancer: Forbidden", "spec.connectionPool: Forbidden", "spec.outlierDetection: Forbidden",
			"spec.retries.budget: Forbidden", "spec.targetRef.port: Forbidden"}},
		{"policy bad target", policyHead + `  targetRef: {group: apps, kind: Deployment, sectionName: a, port: 80}
  timeouts: {request: 1s}
`, []string{`spec.targetRef.kind: Unsupported value: "Deployment"`, "spec.targetRef.name: Required value",
			"spec.targetRef.sectionName: Forbidden"}},
		{"policy hash rules", policyHead + `  targetRef: {kind: Service, name: catalog}
  loadBalancer: {type: RING_HASH, hash: {header: x-user, sourceIP: true}}
`, []string{"spec.loadBalancer.hash: Invalid value: 2: set exactly one of header, cookie or sourceIP"}},
		{"policy ring hash without hash", policyHead + `  targetRef: {kind: Service, name: catalog}
  loadBalancer: {type: RING_HASH}
`, []string{"spec.loadBalancer.hash: Required value"}},
		{"policy hash without ring hash", policyHead + `  targetRef: {kind: Service, name: catalog}
  loadBalancer: {type: MAGLEV, hash: {sourceIP: true}}
`, []string{`spec.loadBalancer.type: Unsupported value: "MAGLEV"`, "spec.loadBalancer.hash: Forbidden"}},
		{"policy bad numbers", policyHead + `  targetRef: {kind: Service, name: catalog}
  connectionPool: {maxConnections: -1, connectTimeout: 0s}
  outlierDetection: {maxEjectionPercent: 101, interval: "10"}
  retries: {attempts: 11, retryOn: [5xx, sometimes, 5xx], retriableStatusCodes: [302], backoff: {baseInterval: 1s, maxInterval: 10ms}, budget: {percent: 200}, maxBodyBytes: 5000000}
  timeouts: {}
  rateLimit: {requestsPerSecond: 0}
  faults: {delay: {fixedDelay: 1s, percent: 100.5}, abort: {httpStatus: 700, grpcStatus: NOPE}}
`, []string{"spec.connectionPool.maxConnections: Invalid value: -1", "spec.connectionPool.connectTimeout: Invalid value: \"0s\"",
			"spec.outlierDetection.maxEjectionPercent: Invalid value: 101", "spec.outlierDetection.interval: Invalid value",
			"spec.retries.attempts: Invalid value: 11", `spec.retries.retryOn[1]: Unsupported value: "sometimes"`,
			"spec.retries.retryOn[2]: Duplicate value", "spec.retries.retriableStatusCodes[0]: Invalid value: 302",
			"spec.retries.backoff.maxInterval: Invalid value", "spec.retries.budget.percent: Invalid value: 200",
			"spec.retries.maxBodyBytes: Invalid value: 5000000", "spec.timeouts.request: Required value",
			"spec.rateLimit.requestsPerSecond: Invalid value: 0", "spec.faults.delay.percent: Invalid value: 100.5",
			"spec.faults.abort.grpcStatus: Forbidden", "spec.faults.abort.httpStatus: Invalid value: 700",
			`spec.faults.abort.grpcStatus: Unsupported value: "NOPE"`}},
		{"policy abort without status", policyHead + `  targetRef: {kind: Service, name: catalog}
  faults: {abort: {percent: 1}}
`, []string{"spec.faults.abort.httpStatus: Required value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := decodeOne(t, tc.yaml)
			err := resource.Validate(o)
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *resource.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%s", w, strings.Join(ve.Details(), "\n"))
				}
			}
		})
	}
}

func TestTrafficDefaults(t *testing.T) {
	r := decodeOne(t, httpHead+`  - filters: [{type: RequestRedirect, requestRedirect: {hostname: a.example}}]
`).(*gatewayv1.HTTPRoute)
	if c := r.Spec.Rules[0].Filters[0].RequestRedirect.StatusCode; c == nil || *c != 302 {
		t.Errorf("redirect status not defaulted to 302: %v", c)
	}
	g := decodeOne(t, grpcHead+`  - matches: [{method: {service: a.B}, headers: [{name: x, value: v}]}]
    backendRefs: [{name: interop, port: 9090}]
`).(*gatewayv1.GRPCRoute)
	m := g.Spec.Rules[0].Matches[0]
	if *m.Method.Type != gatewayv1.GRPCMethodMatchExact || *m.Headers[0].Type != gatewayv1.GRPCHeaderMatchExact || *g.Spec.Rules[0].BackendRefs[0].Weight != 1 {
		t.Errorf("grpc defaults: %+v", g.Spec.Rules[0])
	}
	tcp := decodeOne(t, strings.Replace(tcpHead, "v1alpha2", "v1", 1)+`  parentRefs: [{kind: Service, name: db, port: 5432}]
  rules: [{backendRefs: [{name: db-a, port: 5432}]}]
`).(*gatewayv1alpha2.TCPRoute)
	if tcp.APIVersion != "gateway.networking.k8s.io/v1alpha2" || *tcp.Spec.Rules[0].BackendRefs[0].Weight != 1 {
		t.Errorf("tcp defaults: %s %+v", tcp.APIVersion, tcp.Spec.Rules[0])
	}
	p := decodeOne(t, policyHead+`  targetRef: {kind: Service, name: catalog}
  rateLimit: {requestsPerSecond: 7}
  retries: {retryOn: [5xx], retriableStatusCodes: [503]}
`).(*v1alpha1.TrafficPolicy)
	if p.Spec.RateLimit.Burst != 7 {
		t.Errorf("burst not defaulted: %d", p.Spec.RateLimit.Burst)
	}
	if got := strings.Join(p.Spec.Retries.RetryOn, ","); got != "5xx,retriable-status-codes" {
		t.Errorf("retryOn = %s", got)
	}
	for _, name := range []string{"trafficpolicies", "tp", "grpcroutes", "tcproutes"} {
		if _, err := resource.LookupKind(name); err != nil {
			t.Error(err)
		}
	}
}

func TestStrictPolicyDecoding(t *testing.T) {
	_, err := resource.DecodeYAML("test", []byte(policyHead+`  targetRef: {kind: Service, name: catalog}
  retries: {attempt: 2}
`))
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.retries.attempt"`) {
		t.Fatalf("got %v", err)
	}
}
