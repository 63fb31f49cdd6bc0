package authzserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/rego"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

// decision is what a policy answered, in the terms of OPA's Envoy plugin.
// The query's value is either a boolean (allowed) or an object:
//
//	{"allowed": bool,                       // required
//	 "headers": {name: value or [values]},  // allowed: set on the upstream request; denied: on the response
//	 "request_headers_to_remove": [names],  // allowed only
//	 "response_headers_to_add": {name: value or [values]}, // allowed only
//	 "body": string,                        // denied only
//	 "http_status": int,                    // denied only (default 403)
//	 "dynamic_metadata": {…}}
type decision struct {
	Allowed              bool
	Headers              []header
	RequestHeadersRemove []string
	ResponseHeadersToAdd []header
	Body                 string
	HTTPStatus           int
	DynamicMetadata      *structpb.Struct
	Undefined            bool // the query had no value: a deny
}

type header struct{ name, value string }

// decide turns a query's result set into a decision. An undefined result is
// a deny; a value of any other shape is an error (the policy is wrong).
func decide(rs rego.ResultSet) (decision, error) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return decision{Undefined: true}, nil
	}
	if len(rs) > 1 {
		return decision{}, fmt.Errorf("authz: the query has %d results, want one", len(rs))
	}
	switch v := rs[0].Expressions[0].Value.(type) {
	case bool:
		return decision{Allowed: v}, nil
	case map[string]any:
		return decisionObject(v)
	default:
		return decision{}, fmt.Errorf("authz: decision is %T, want a boolean or an object with \"allowed\"", v)
	}
}

func decisionObject(m map[string]any) (decision, error) {
	var d decision
	allowed, ok := m["allowed"].(bool)
	if !ok {
		return d, fmt.Errorf("authz: decision object has no boolean \"allowed\"")
	}
	d.Allowed = allowed
	var err error
	if d.Headers, err = headerList(m, "headers"); err != nil {
		return d, err
	}
	if d.ResponseHeadersToAdd, err = headerList(m, "response_headers_to_add"); err != nil {
		return d, err
	}
	if v, ok := m["request_headers_to_remove"]; ok {
		list, ok := v.([]any)
		if !ok {
			return d, fmt.Errorf("authz: decision \"request_headers_to_remove\" is %T, want an array of strings", v)
		}
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return d, fmt.Errorf("authz: decision \"request_headers_to_remove\" holds %T, want strings", e)
			}
			d.RequestHeadersRemove = append(d.RequestHeadersRemove, s)
		}
	}
	if v, ok := m["body"]; ok {
		if d.Body, ok = v.(string); !ok {
			return d, fmt.Errorf("authz: decision \"body\" is %T, want a string", v)
		}
	}
	if v, ok := m["http_status"]; ok {
		n, err := intOf(v)
		if err != nil || n < 200 || n > 599 {
			return d, fmt.Errorf("authz: decision \"http_status\" %v: want an HTTP status 200-599", v)
		}
		d.HTTPStatus = n
	}
	if v, ok := m["dynamic_metadata"]; ok {
		obj, ok := v.(map[string]any)
		if !ok {
			return d, fmt.Errorf("authz: decision \"dynamic_metadata\" is %T, want an object", v)
		}
		s, err := structpb.NewStruct(jsonNumbersToFloat(obj).(map[string]any))
		if err != nil {
			return d, fmt.Errorf("authz: decision \"dynamic_metadata\": %w", err)
		}
		d.DynamicMetadata = s
	}
	return d, nil
}

// headerList reads {name: "v"} or {name: ["v1", "v2"]}, sorted by name so
// responses are deterministic.
func headerList(m map[string]any, key string) ([]header, error) {
	v, ok := m[key]
	if !ok {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("authz: decision %q is %T, want an object", key, v)
	}
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []header
	for _, k := range names {
		switch val := obj[k].(type) {
		case string:
			out = append(out, header{k, val})
		case []any:
			for _, e := range val {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("authz: decision %q header %q holds %T, want strings", key, k, e)
				}
				out = append(out, header{k, s})
			}
		default:
			return nil, fmt.Errorf("authz: decision %q header %q is %T, want a string or strings", key, k, val)
		}
	}
	return out, nil
}

func intOf(v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	case int:
		return n, nil
	case float64:
		if n != float64(int(n)) {
			return 0, fmt.Errorf("not an integer")
		}
		return int(n), nil
	}
	return 0, fmt.Errorf("not a number")
}

func jsonNumbersToFloat(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = jsonNumbersToFloat(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = jsonNumbersToFloat(e)
		}
		return x
	}
	return v
}

// response is the CheckResponse for a decision.
func (d decision) response() *authv3.CheckResponse {
	if d.Allowed {
		ok := &authv3.OkHttpResponse{
			Headers:              headerOptions(d.Headers),
			HeadersToRemove:      d.RequestHeadersRemove,
			ResponseHeadersToAdd: headerOptions(d.ResponseHeadersToAdd),
		}
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
			DynamicMetadata: d.DynamicMetadata,
		}
	}
	code := d.HTTPStatus
	if code == 0 {
		code = http.StatusForbidden
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
			Headers: headerOptions(d.Headers),
			Body:    d.Body,
		}},
		DynamicMetadata: d.DynamicMetadata,
	}
}

// headerOptions: the first value of a name replaces the header, later ones
// are appended (a list in the decision is a multi-valued header).
func headerOptions(hs []header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if i > 0 && hs[i-1].name == h.name {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		out[i] = &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.name, Value: h.value},
			AppendAction: action,
		}
	}
	return out
}

// denyAll is the answer while no good policy is loaded.
var denyAll = decision{}
