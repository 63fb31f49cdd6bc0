package authzserver

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Input builds the input document of a Check: the CheckRequest as OPA's
// Envoy plugin presents it (protojson field names: input.attributes.source.
// address.socketAddress.address, input.attributes.request.http.headers…),
// input.parsed_path, input.parsed_query, input.parsed_body and
// input.truncated_body, input.version, and Weft's input.source (the
// verified caller identity). Fields the request leaves empty are absent,
// as in protojson.
//
// An error means the request cannot be described faithfully (an
// unparseable path); the Server denies such a request.
func Input(req *authv3.CheckRequest) (ast.Value, error) {
	attrs := req.GetAttributes()
	httpReq := attrs.GetRequest().GetHttp()
	in := ast.NewObject()

	a := ast.NewObject()
	putObj(a, "source", peer(attrs.GetSource()))
	putObj(a, "destination", peer(attrs.GetDestination()))
	r := ast.NewObject()
	if t := attrs.GetRequest().GetTime(); t != nil {
		if b, err := protojson.Marshal(t); err == nil {
			var s string
			if json.Unmarshal(b, &s) == nil {
				putStr(r, "time", s)
			}
		}
	}
	headers := httpReq.GetHeaders()
	if len(headers) == 0 && len(httpReq.GetHeaderMap().GetHeaders()) > 0 {
		headers = joinHeaderMap(httpReq.GetHeaderMap().GetHeaders())
	}
	if httpReq != nil {
		h := ast.NewObject()
		putStr(h, "id", httpReq.GetId())
		putStr(h, "method", httpReq.GetMethod())
		if len(headers) > 0 {
			h.Insert(ast.StringTerm("headers"), ast.NewTerm(stringMap(headers)))
		}
		putStr(h, "path", httpReq.GetPath())
		putStr(h, "host", httpReq.GetHost())
		putStr(h, "scheme", httpReq.GetScheme())
		putStr(h, "query", httpReq.GetQuery())
		putStr(h, "fragment", httpReq.GetFragment())
		if n := httpReq.GetSize(); n != 0 {
			putStr(h, "size", strconv.FormatInt(n, 10)) // protojson writes int64 as a string
		}
		putStr(h, "protocol", httpReq.GetProtocol())
		putStr(h, "body", httpReq.GetBody())
		if raw := httpReq.GetRawBody(); len(raw) > 0 {
			putStr(h, "rawBody", base64.StdEncoding.EncodeToString(raw))
		}
		putObj(r, "http", h)
	}
	putObj(a, "request", r)
	if ce := attrs.GetContextExtensions(); len(ce) > 0 {
		a.Insert(ast.StringTerm("contextExtensions"), ast.NewTerm(stringMap(ce)))
	}
	for _, md := range []struct {
		key string
		msg proto.Message
		set bool
	}{
		{"metadataContext", attrs.GetMetadataContext(), attrs.GetMetadataContext() != nil},
		{"routeMetadataContext", attrs.GetRouteMetadataContext(), attrs.GetRouteMetadataContext() != nil},
		{"tlsSession", attrs.GetTlsSession(), attrs.GetTlsSession() != nil},
	} {
		if !md.set {
			continue
		}
		v, err := protoValue(md.msg)
		if err != nil {
			return nil, fmt.Errorf("authz: attributes.%s: %w", md.key, err)
		}
		if obj, ok := v.(ast.Object); ok && obj.Len() > 0 {
			a.Insert(ast.StringTerm(md.key), ast.NewTerm(v))
		}
	}
	putObj(in, "attributes", a)

	path := httpReq.GetPath()
	parsedPath, parsedQuery, err := parsePath(path)
	if err != nil {
		return nil, err
	}
	in.Insert(ast.StringTerm("parsed_path"), ast.NewTerm(parsedPath))
	in.Insert(ast.StringTerm("parsed_query"), ast.NewTerm(parsedQuery))
	if body, truncated, ok := parseBody(headers, httpReq.GetBody(), httpReq.GetRawBody()); ok {
		in.Insert(ast.StringTerm("parsed_body"), ast.NewTerm(body))
		in.Insert(ast.StringTerm("truncated_body"), ast.BooleanTerm(truncated))
	}
	in.Insert(ast.StringTerm("version"), ast.NewTerm(ast.NewObject(
		ast.Item(ast.StringTerm("encoding"), ast.StringTerm("protojson")),
		ast.Item(ast.StringTerm("ext_authz"), ast.StringTerm("v3")),
	)))
	in.Insert(ast.StringTerm("source"), ast.NewTerm(weftSource(attrs.GetSource().GetPrincipal())))
	return in, nil
}

// weftSource is input.source: the caller's identity as the sidecar verified
// it (the URI SAN of its client certificate, sent as
// attributes.source.principal), split into its parts when it is a SPIFFE ID
// of Weft's shape spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/NAME.
func weftSource(principal string) ast.Object {
	o := ast.NewObject()
	putStr(o, "principal", principal)
	id, err := spiffeid.FromString(principal)
	if err != nil {
		return o
	}
	putStr(o, "spiffe_id", id.String())
	putStr(o, "trust_domain", id.TrustDomain().Name())
	seg := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(seg) == 4 && seg[0] == "ns" && seg[2] == "sa" {
		putStr(o, "namespace", seg[1])
		putStr(o, "service_account", seg[3])
	}
	return o
}

func peer(p *authv3.AttributeContext_Peer) ast.Object {
	o := ast.NewObject()
	if p == nil {
		return o
	}
	if sa := p.GetAddress().GetSocketAddress(); sa != nil {
		s := ast.NewObject()
		putStr(s, "address", sa.GetAddress())
		if port, ok := sa.GetPortSpecifier().(*corev3.SocketAddress_PortValue); ok && port.PortValue != 0 {
			s.Insert(ast.StringTerm("portValue"), ast.IntNumberTerm(int(port.PortValue)))
		}
		putObj(o, "address", ast.NewObject(ast.Item(ast.StringTerm("socketAddress"), ast.NewTerm(s))))
	}
	putStr(o, "service", p.GetService())
	if len(p.GetLabels()) > 0 {
		o.Insert(ast.StringTerm("labels"), ast.NewTerm(stringMap(p.GetLabels())))
	}
	putStr(o, "principal", p.GetPrincipal())
	putStr(o, "certificate", p.GetCertificate())
	return o
}

// parsePath splits a request path the way OPA's Envoy plugin does:
// parsed_path is the path without its leading "/", split at "/" ("/" gives
// [""]), each segment decoded; parsed_query maps each query parameter to
// all its values.
func parsePath(path string) (ast.Value, ast.Value, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, nil, fmt.Errorf("authz: request path: %w", err)
	}
	// Split before decoding: an encoded "/" (%2F) stays inside its segment
	// rather than making a new one (OPA's Envoy plugin decodes first).
	segs := strings.Split(strings.TrimLeft(u.EscapedPath(), "/"), "/")
	terms := make([]*ast.Term, len(segs))
	for i, s := range segs {
		if d, err := url.PathUnescape(s); err == nil {
			s = d
		}
		terms[i] = ast.StringTerm(s)
	}
	q := ast.NewObject()
	for k, vs := range u.Query() {
		vals := make([]*ast.Term, len(vs))
		for i, v := range vs {
			vals[i] = ast.StringTerm(v)
		}
		q.Insert(ast.StringTerm(k), ast.ArrayTerm(vals...))
	}
	return ast.NewArray(terms...), q, nil
}

// parseBody decodes a JSON request body (the only kind Weft parses; the
// raw body is always in attributes.request.http). Envoy marks a body cut at
// its max_request_bytes with x-envoy-auth-partial-body: true.
func parseBody(headers map[string]string, body string, raw []byte) (ast.Value, bool, bool) {
	ct := headers["content-type"]
	if !strings.HasPrefix(ct, "application/json") {
		return nil, false, false
	}
	if body == "" {
		body = string(raw)
	}
	if body == "" {
		return nil, false, false
	}
	if headers["x-envoy-auth-partial-body"] == "true" {
		return ast.Null{}, true, true
	}
	v, err := ast.ValueFromReader(strings.NewReader(body))
	if err != nil {
		return nil, false, false // not JSON after all: leave parsed_body undefined
	}
	return v, false, true
}

func joinHeaderMap(hs []*corev3.HeaderValue) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		v := h.GetValue()
		if v == "" && len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		k := strings.ToLower(h.GetKey())
		if prev, ok := m[k]; ok {
			v = prev + "," + v
		}
		m[k] = v
	}
	return m
}

func protoValue(m proto.Message) (ast.Value, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	return ast.ValueFromReader(strings.NewReader(string(b)))
}

func stringMap(m map[string]string) ast.Object {
	o := ast.NewObjectWithCapacity(len(m))
	for k, v := range m {
		o.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
	return o
}

func putStr(o ast.Object, k, v string) {
	if v != "" {
		o.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
}

func putObj(o ast.Object, k string, v ast.Object) {
	if v.Len() > 0 {
		o.Insert(ast.StringTerm(k), ast.NewTerm(v))
	}
}
