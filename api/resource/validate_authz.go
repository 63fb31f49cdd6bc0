package resource

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// Defaults of AuthorizationPolicy, RequestAuthentication and MeshConfig's
// authorization.
const (
	DefaultJWTClockSkew     = "60s"
	DefaultExtAuthzTimeout  = "200ms"
	DefaultAuthzAction      = v1alpha1.AuthzAllow
	DefaultSlashEncoding    = v1alpha1.SlashReject
	MaxTrustedHops          = 16
	maxAuthzValueLen        = 1024
	authzTargetKindService  = "Service"
	authzDefaultActionAllow = v1alpha1.AuthzAllow
)

// DefaultJWTAlgorithms are the algorithms a jwtRule accepts when it names
// none.
var DefaultJWTAlgorithms = []string{"RS256", "ES256"}

// JWTAlgorithms are every algorithm a jwtRule may accept (asymmetric
// only: "none" and the HMAC algorithms are refused).
var JWTAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Attribute kinds of AuthorizationPolicy `when` keys.
const (
	AttrRequestHeader  = "request.headers"
	AttrClaim          = "request.auth.claims"
	AttrAuthPrincipal  = "request.auth.principal"
	AttrAudiences      = "request.auth.audiences"
	AttrPresenter      = "request.auth.presenter"
	AttrSourceIP       = "source.ip"
	AttrSourceNS       = "source.namespace"
	AttrSourcePrincipa = "source.principal"
	AttrRemoteIP       = "remote.ip"
	AttrDestPort       = "destination.port"
	AttrSNI            = "connection.sni"
)

// AuthzKey is a parsed `when` key: its attribute and, for headers, the
// header name (lower case), for claims the claim path (nested claims with
// request.auth.claims[a][b]).
type AuthzKey struct {
	Attr string
	Name []string
}

// L4 reports whether the attribute is known for a TCP connection.
func (k AuthzKey) L4() bool {
	switch k.Attr {
	case AttrSourceIP, AttrSourceNS, AttrSourcePrincipa, AttrDestPort:
		return true
	}
	return false
}

var authzKeys = []string{AttrRequestHeader + "[NAME]", AttrClaim + "[CLAIM]", AttrAuthPrincipal, AttrAudiences, AttrPresenter,
	AttrSourceIP, AttrSourceNS, AttrSourcePrincipa, AttrRemoteIP, AttrDestPort, AttrSNI}

// ParseAuthzKey parses a `when` key.
func ParseAuthzKey(key string) (AuthzKey, error) {
	for _, a := range []string{AttrAuthPrincipal, AttrAudiences, AttrPresenter, AttrSourceIP, AttrSourceNS,
		AttrSourcePrincipa, AttrRemoteIP, AttrDestPort, AttrSNI} {
		if key == a {
			return AuthzKey{Attr: a}, nil
		}
	}
	for _, a := range []string{AttrRequestHeader, AttrClaim} {
		rest, ok := strings.CutPrefix(key, a)
		if !ok || !strings.HasPrefix(rest, "[") {
			continue
		}
		var names []string
		for rest != "" {
			if rest[0] != '[' {
				return AuthzKey{}, fmt.Errorf("expected [ at %q", rest)
			}
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return AuthzKey{}, fmt.Errorf("missing ]")
			}
			n := rest[1:end]
			if n == "" || strings.ContainsAny(n, "[]") || strings.IndexFunc(n, unicode.IsSpace) >= 0 {
				return AuthzKey{}, fmt.Errorf("empty or invalid name %q", n)
			}
			names = append(names, n)
			rest = rest[end+1:]
		}
		if a == AttrRequestHeader {
			if len(names) != 1 {
				return AuthzKey{}, fmt.Errorf("one header name: request.headers[NAME]")
			}
			if errs := validation.IsHTTPHeaderName(names[0]); len(errs) > 0 {
				return AuthzKey{}, fmt.Errorf("invalid header name %q", names[0])
			}
			names[0] = strings.ToLower(names[0])
		}
		if a == AttrClaim && len(names) > 4 {
			return AuthzKey{}, fmt.Errorf("claims nest at most 4 deep")
		}
		return AuthzKey{Attr: a, Name: names}, nil
	}
	return AuthzKey{}, fmt.Errorf("unknown key")
}

// WildcardPattern splits a value with at most one '*' at its start or end
// (or "*" alone) into its kind and the literal part: "exact", "prefix"
// ("abc*"), "suffix" ("*abc") or "any" ("*").
func WildcardPattern(v string) (kind, literal string, err error) {
	switch {
	case v == "":
		return "", "", fmt.Errorf("must not be empty")
	case v == "*":
		return "any", "", nil
	case strings.Count(v, "*") > 1:
		return "", "", fmt.Errorf("at most one '*', at the start or the end")
	case strings.HasPrefix(v, "*"):
		return "suffix", v[1:], nil
	case strings.HasSuffix(v, "*"):
		return "prefix", v[:len(v)-1], nil
	case strings.Contains(v, "*"):
		return "", "", fmt.Errorf("'*' only at the start or the end")
	}
	return "exact", v, nil
}

// SplitRequestPrincipal splits a requestPrincipals value ISSUER/SUBJECT at
// its last '/': each part may be a wildcard pattern; "*" alone is any
// token.
func SplitRequestPrincipal(v string) (iss, sub string, err error) {
	if v == "*" {
		return "*", "*", nil
	}
	i := strings.LastIndexByte(v, '/')
	if i <= 0 || i == len(v)-1 {
		return "", "", fmt.Errorf("must be ISSUER/SUBJECT (either may be '*' or use a leading or trailing '*'), or '*'")
	}
	return v[:i], v[i+1:], nil
}

func defaultAuthorizationPolicy(p *v1alpha1.AuthorizationPolicy) {
	if p.Spec.Action == "" {
		p.Spec.Action = DefaultAuthzAction
	}
	if t := p.Spec.TargetRef; t != nil && t.Kind == "" {
		t.Kind = authzTargetKindService
	}
}

func validateAuthzTarget(p *field.Path, t *v1alpha1.AuthzTargetRef) field.ErrorList {
	if t == nil {
		return nil
	}
	var errs field.ErrorList
	if t.Kind != authzTargetKindService {
		errs = append(errs, field.NotSupported(p.Child("kind"), t.Kind, []string{authzTargetKindService}))
	}
	if t.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), "the Service's name"))
	} else {
		for _, m := range validation.IsDNS1123Label(t.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), t.Name, m))
		}
	}
	if t.Port != 0 {
		errs = append(errs, validatePort(p.Child("port"), t.Port)...)
	}
	return errs
}

func validateAuthorizationPolicy(ap *v1alpha1.AuthorizationPolicy) error {
	errs := validateMeta(ap.Name, ap.Namespace)
	spec := field.NewPath("spec")
	s := ap.Spec
	errs = append(errs, validateAuthzTarget(spec.Child("targetRef"), s.TargetRef)...)
	actions := []string{v1alpha1.AuthzAllow, v1alpha1.AuthzDeny, v1alpha1.AuthzAudit, v1alpha1.AuthzCustom}
	if !slices.Contains(actions, s.Action) {
		errs = append(errs, field.NotSupported(spec.Child("action"), s.Action, actions))
	}
	if s.Action == v1alpha1.AuthzCustom {
		if s.Provider == nil || s.Provider.Name == "" {
			errs = append(errs, field.Required(spec.Child("provider", "name"), "a CUSTOM policy names a provider of MeshConfig spec.authorization.providers"))
		} else {
			for _, m := range validation.IsDNS1123Label(s.Provider.Name) {
				errs = append(errs, field.Invalid(spec.Child("provider", "name"), s.Provider.Name, m))
			}
		}
	} else if s.Provider != nil {
		errs = append(errs, field.Forbidden(spec.Child("provider"), "only with action CUSTOM"))
	}
	if s.Action == v1alpha1.AuthzDeny && len(s.Rules) == 0 {
		errs = append(errs, field.Required(spec.Child("rules"), "a DENY policy needs at least one rule (a rule {} denies everything)"))
	}
	for i, r := range s.Rules {
		errs = append(errs, validateAuthzRule(spec.Child("rules").Index(i), r)...)
	}
	return asError(ap, errs)
}

func validateAuthzRule(p *field.Path, r v1alpha1.AuthzRule) field.ErrorList {
	var errs field.ErrorList
	for i, f := range r.From {
		errs = append(errs, validateAuthzSource(p.Child("from").Index(i).Child("source"), f.Source)...)
	}
	for i, t := range r.To {
		errs = append(errs, validateAuthzOperation(p.Child("to").Index(i).Child("operation"), t.Operation)...)
	}
	for i, c := range r.When {
		errs = append(errs, validateAuthzCondition(p.Child("when").Index(i), c)...)
	}
	return errs
}

// valueCheck checks one value of an authorization field.
type valueCheck func(string) error

func checkValues(p *field.Path, values []string, check valueCheck) field.ErrorList {
	var errs field.ErrorList
	for i, v := range values {
		if len(v) > maxAuthzValueLen || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			errs = append(errs, field.Invalid(p.Index(i), v, fmt.Sprintf("at most %d characters, no control characters", maxAuthzValueLen)))
			continue
		}
		if err := check(v); err != nil {
			errs = append(errs, field.Invalid(p.Index(i), v, err.Error()))
		}
	}
	return errs
}

func checkWildcard(v string) error {
	_, _, err := WildcardPattern(v)
	return err
}

func checkNamespace(v string) error {
	kind, lit, err := WildcardPattern(v)
	if err != nil || kind == "any" {
		return err
	}
	if strings.ContainsAny(lit, "/ ") {
		return fmt.Errorf("a namespace name, with an optional leading or trailing '*'")
	}
	if kind == "exact" {
		if m := validation.IsDNS1123Label(lit); len(m) > 0 {
			return fmt.Errorf("%s", m[0])
		}
	}
	return nil
}

func checkPrincipal(v string) error {
	if strings.ContainsAny(v, " \t") {
		return fmt.Errorf("a SPIFFE ID (spiffe://TRUST_DOMAIN/ns/NS/sa/SA), with an optional leading or trailing '*'")
	}
	return checkWildcard(v)
}

// ParseIPBlock parses an IP address or a CIDR range.
func ParseIPBlock(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("an IP address or CIDR range")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("an IP address or CIDR range")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func checkIPBlock(v string) error { _, err := ParseIPBlock(v); return err }

func checkPort(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != v {
		return fmt.Errorf("a port number between 1 and 65535")
	}
	return nil
}

func checkRequestPrincipal(v string) error {
	iss, sub, err := SplitRequestPrincipal(v)
	if err != nil {
		return err
	}
	if err := checkWildcard(iss); err != nil {
		return fmt.Errorf("issuer: %v", err)
	}
	if err := checkWildcard(sub); err != nil {
		return fmt.Errorf("subject: %v", err)
	}
	return nil
}

func checkMethod(v string) error {
	kind, lit, err := WildcardPattern(v)
	if err != nil || kind == "any" {
		return err
	}
	if strings.IndexFunc(lit, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r == '-' || r == '_') }) >= 0 {
		return fmt.Errorf("an upper-case HTTP method (GET, POST...)")
	}
	return nil
}

func checkHost(v string) error {
	if strings.ContainsAny(v, "/ \t") {
		return fmt.Errorf("a host name (HOST or HOST:PORT), with an optional leading or trailing '*'")
	}
	return checkWildcard(v)
}

func checkPath(v string) error {
	if !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "*") {
		return fmt.Errorf("an absolute path (starting with /), with an optional leading or trailing '*'")
	}
	if strings.ContainsAny(v, "?# \t\\") {
		return fmt.Errorf("a path without query, fragment, spaces or backslashes")
	}
	// Requests are matched in their normalised form (docs/security.md):
	// a policy path that no normalised request can have would never match.
	lit := strings.Trim(v, "*")
	up := strings.ToUpper(lit)
	switch {
	case strings.Contains(lit, "//"):
		return fmt.Errorf("requests are matched with repeated slashes merged: write a single '/'")
	case strings.Contains(lit+"/", "/./") || strings.Contains(lit+"/", "/../"):
		return fmt.Errorf("requests are matched with dot segments removed: write the path without '.' or '..' segments")
	case strings.Contains(up, "%2F") || strings.Contains(up, "%5C") || strings.Contains(up, "%00"):
		return fmt.Errorf("encoded '/', '\\' and NUL never reach a policy (they are refused or decoded first)")
	}
	return checkWildcard(v)
}

func validateAuthzSource(p *field.Path, s v1alpha1.AuthzSource) field.ErrorList {
	var errs field.ErrorList
	fields := []struct {
		name   string
		values []string
		check  valueCheck
	}{
		{"principals", s.Principals, checkPrincipal}, {"notPrincipals", s.NotPrincipals, checkPrincipal},
		{"namespaces", s.Namespaces, checkNamespace}, {"notNamespaces", s.NotNamespaces, checkNamespace},
		{"ipBlocks", s.IPBlocks, checkIPBlock}, {"notIpBlocks", s.NotIPBlocks, checkIPBlock},
		{"remoteIpBlocks", s.RemoteIPBlocks, checkIPBlock}, {"notRemoteIpBlocks", s.NotRemoteIPBlocks, checkIPBlock},
		{"requestPrincipals", s.RequestPrincipals, checkRequestPrincipal}, {"notRequestPrincipals", s.NotRequestPrincipals, checkRequestPrincipal},
	}
	set := false
	for _, f := range fields {
		set = set || len(f.values) > 0
		errs = append(errs, checkValues(p.Child(f.name), f.values, f.check)...)
	}
	if !set {
		errs = append(errs, field.Required(p, "set at least one field (a rule without from matches every source)"))
	}
	return errs
}

func validateAuthzOperation(p *field.Path, o v1alpha1.AuthzOperation) field.ErrorList {
	var errs field.ErrorList
	fields := []struct {
		name   string
		values []string
		check  valueCheck
	}{
		{"methods", o.Methods, checkMethod}, {"notMethods", o.NotMethods, checkMethod},
		{"hosts", o.Hosts, checkHost}, {"notHosts", o.NotHosts, checkHost},
		{"ports", o.Ports, checkPort}, {"notPorts", o.NotPorts, checkPort},
		{"paths", o.Paths, checkPath}, {"notPaths", o.NotPaths, checkPath},
	}
	set := false
	for _, f := range fields {
		set = set || len(f.values) > 0
		errs = append(errs, checkValues(p.Child(f.name), f.values, f.check)...)
	}
	if !set {
		errs = append(errs, field.Required(p, "set at least one field (a rule without to matches every operation)"))
	}
	return errs
}

func validateAuthzCondition(p *field.Path, c v1alpha1.AuthzCondition) field.ErrorList {
	var errs field.ErrorList
	key, err := ParseAuthzKey(c.Key)
	if c.Key == "" {
		return field.ErrorList{field.Required(p.Child("key"), "one of "+strings.Join(authzKeys, ", "))}
	}
	if err != nil {
		return field.ErrorList{field.Invalid(p.Child("key"), c.Key, err.Error()+"; supported: "+strings.Join(authzKeys, ", "))}
	}
	if len(c.Values) == 0 && len(c.NotValues) == 0 {
		errs = append(errs, field.Required(p.Child("values"), "values or notValues"))
	}
	check := checkWildcard
	switch key.Attr {
	case AttrSourceIP, AttrRemoteIP:
		check = checkIPBlock
	case AttrDestPort:
		check = checkPort
	case AttrSourceNS:
		check = checkNamespace
	case AttrSourcePrincipa:
		check = checkPrincipal
	case AttrAuthPrincipal:
		check = checkRequestPrincipal
	}
	errs = append(errs, checkValues(p.Child("values"), c.Values, check)...)
	errs = append(errs, checkValues(p.Child("notValues"), c.NotValues, check)...)
	return errs
}

// AuthzRuleL7 reports whether a rule uses a field a TCP connection cannot
// be matched on (anything but principals, namespaces, ipBlocks, ports and
// the when keys source.ip, source.namespace, source.principal,
// destination.port).
func AuthzRuleL7(r v1alpha1.AuthzRule) bool {
	for _, f := range r.From {
		s := f.Source
		if len(s.RemoteIPBlocks)+len(s.NotRemoteIPBlocks)+len(s.RequestPrincipals)+len(s.NotRequestPrincipals) > 0 {
			return true
		}
	}
	for _, t := range r.To {
		o := t.Operation
		if len(o.Methods)+len(o.NotMethods)+len(o.Hosts)+len(o.NotHosts)+len(o.Paths)+len(o.NotPaths) > 0 {
			return true
		}
	}
	for _, c := range r.When {
		if k, err := ParseAuthzKey(c.Key); err != nil || !k.L4() {
			return true
		}
	}
	return false
}

func defaultRequestAuthentication(ra *v1alpha1.RequestAuthentication) {
	if t := ra.Spec.TargetRef; t != nil && t.Kind == "" {
		t.Kind = authzTargetKindService
	}
	for i := range ra.Spec.JWTRules {
		r := &ra.Spec.JWTRules[i]
		if len(r.Algorithms) == 0 {
			r.Algorithms = slices.Clone(DefaultJWTAlgorithms)
		}
		if r.ClockSkew == "" {
			r.ClockSkew = DefaultJWTClockSkew
		}
	}
}

func validateRequestAuthentication(ra *v1alpha1.RequestAuthentication) error {
	errs := validateMeta(ra.Name, ra.Namespace)
	spec := field.NewPath("spec")
	errs = append(errs, validateAuthzTarget(spec.Child("targetRef"), ra.Spec.TargetRef)...)
	if len(ra.Spec.JWTRules) == 0 {
		errs = append(errs, field.Required(spec.Child("jwtRules"), "at least one issuer"))
	}
	issuers := map[string]bool{}
	for i, r := range ra.Spec.JWTRules {
		p := spec.Child("jwtRules").Index(i)
		switch {
		case r.Issuer == "":
			errs = append(errs, field.Required(p.Child("issuer"), "the tokens' iss claim"))
		case issuers[r.Issuer]:
			errs = append(errs, field.Duplicate(p.Child("issuer"), r.Issuer))
		case len(r.Issuer) > maxAuthzValueLen || strings.IndexFunc(r.Issuer, unicode.IsControl) >= 0:
			errs = append(errs, field.Invalid(p.Child("issuer"), r.Issuer, "at most 1024 characters, no control characters"))
		}
		issuers[r.Issuer] = true
		errs = append(errs, checkValues(p.Child("audiences"), r.Audiences, func(v string) error {
			if v == "" {
				return fmt.Errorf("must not be empty")
			}
			return nil
		})...)
		switch {
		case r.JWKS == "" && r.JWKSURI == "":
			errs = append(errs, field.Required(p.Child("jwksUri"), "jwks or jwksUri"))
		case r.JWKS != "" && r.JWKSURI != "":
			errs = append(errs, field.Forbidden(p.Child("jwks"), "only one of jwks and jwksUri"))
		case r.JWKS != "":
			var set struct {
				Keys []json.RawMessage `json:"keys"`
			}
			if err := json.Unmarshal([]byte(r.JWKS), &set); err != nil || set.Keys == nil {
				errs = append(errs, field.Invalid(p.Child("jwks"), "(key set)", "must be a JSON Web Key Set: {\"keys\": [...]}"))
			}
		default:
			u, err := url.Parse(r.JWKSURI)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
				errs = append(errs, field.Invalid(p.Child("jwksUri"), r.JWKSURI, "must be an http or https URL without user info or fragment"))
			}
		}
		for j, a := range r.Algorithms {
			ap := p.Child("algorithms").Index(j)
			switch {
			case strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS"):
				errs = append(errs, field.Invalid(ap, a, "unsigned and HMAC (shared secret) tokens are never accepted"))
			case !slices.Contains(JWTAlgorithms, a):
				errs = append(errs, field.NotSupported(ap, a, JWTAlgorithms))
			}
		}
		if d, err := parseGatewayDuration(r.ClockSkew); err != nil {
			errs = append(errs, field.Invalid(p.Child("clockSkew"), r.ClockSkew, err.Error()))
		} else if d.Hours() > 1 {
			errs = append(errs, field.Invalid(p.Child("clockSkew"), r.ClockSkew, "at most 1h"))
		}
		for j, h := range r.FromHeaders {
			hp := p.Child("fromHeaders").Index(j)
			if ms := validation.IsHTTPHeaderName(h.Name); len(ms) > 0 || h.Name == "" {
				errs = append(errs, field.Invalid(hp.Child("name"), h.Name, "an HTTP header name"))
			}
			if strings.IndexFunc(h.Prefix, unicode.IsControl) >= 0 {
				errs = append(errs, field.Invalid(hp.Child("prefix"), h.Prefix, "no control characters"))
			}
		}
		errs = append(errs, checkValues(p.Child("fromParams"), r.FromParams, func(v string) error {
			if v == "" || strings.ContainsAny(v, "&=# ") {
				return fmt.Errorf("a query parameter name")
			}
			return nil
		})...)
		for j, c := range r.OutputClaimToHeaders {
			cp := p.Child("outputClaimToHeaders").Index(j)
			if ms := validation.IsHTTPHeaderName(c.Header); len(ms) > 0 || c.Header == "" {
				errs = append(errs, field.Invalid(cp.Child("header"), c.Header, "an HTTP header name"))
			}
			if c.Claim == "" || strings.IndexFunc(c.Claim, unicode.IsSpace) >= 0 {
				errs = append(errs, field.Invalid(cp.Child("claim"), c.Claim, "a claim name"))
			}
		}
	}
	return asError(ra, errs)
}

func defaultAuthorization(a *v1alpha1.Authorization) {
	if a.DefaultAction == "" {
		a.DefaultAction = authzDefaultActionAllow
	}
	for i := range a.Providers {
		if e := a.Providers[i].ExtAuthz; e != nil && e.Timeout == "" {
			e.Timeout = DefaultExtAuthzTimeout
		}
	}
	if a.Normalization == nil {
		a.Normalization = &v1alpha1.AuthzNormalization{}
	}
	if a.Normalization.SlashEncoding == "" {
		a.Normalization.SlashEncoding = DefaultSlashEncoding
	}
}

func validateAuthorization(p *field.Path, a *v1alpha1.Authorization) field.ErrorList {
	var errs field.ErrorList
	if a.DefaultAction != v1alpha1.AuthzAllow && a.DefaultAction != v1alpha1.AuthzDeny {
		errs = append(errs, field.NotSupported(p.Child("defaultAction"), a.DefaultAction, []string{v1alpha1.AuthzAllow, v1alpha1.AuthzDeny}))
	}
	names := map[string]bool{}
	for i, pr := range a.Providers {
		pp := p.Child("providers").Index(i)
		if pr.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), "the name CUSTOM policies use"))
		} else {
			for _, m := range validation.IsDNS1123Label(pr.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), pr.Name, m))
			}
			if names[pr.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), pr.Name))
			}
			names[pr.Name] = true
		}
		e := pr.ExtAuthz
		if e == nil {
			errs = append(errs, field.Required(pp.Child("extAuthz"), "the authorizer (an Envoy ext_authz gRPC service)"))
			continue
		}
		errs = append(errs, validateEndpoint(pp.Child("extAuthz", "service"), e.Service)...)
		errs = append(errs, positiveDuration(pp.Child("extAuthz", "timeout"), e.Timeout)...)
	}
	if n := a.Normalization; n != nil {
		np := p.Child("normalization")
		if n.SlashEncoding != v1alpha1.SlashReject && n.SlashEncoding != v1alpha1.SlashDecode {
			errs = append(errs, field.NotSupported(np.Child("slashEncoding"), n.SlashEncoding, []string{v1alpha1.SlashReject, v1alpha1.SlashDecode}))
		}
		if n.TrustedHops < 0 || n.TrustedHops > MaxTrustedHops {
			errs = append(errs, field.Invalid(np.Child("trustedHops"), n.TrustedHops, fmt.Sprintf("must be between 0 and %d", MaxTrustedHops)))
		}
	}
	return errs
}
