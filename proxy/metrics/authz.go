package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Policy label values that are not a policy's name.
const (
	// PolicyDefault: no ALLOW policy matched (default deny), or the
	// listener denies everything because its authorization config could
	// not be used.
	PolicyDefault = "default"
	// PolicyJWT: a token failed verification (401).
	PolicyJWT = "jwt"
	// PolicyOther: past MaxPolicies distinct names.
	PolicyOther = "other"
)

// MaxPolicies bounds the distinct policy label values of the
// authorization counters; further names are counted as PolicyOther.
const MaxPolicies = 1000

// authzCounters is one counter vector with a policy label, bounded.
type authzCounters struct {
	vec *prometheus.CounterVec
	m   sync.Map // policy → prometheus.Counter
	n   atomic.Int64
}

func newAuthzCounters(name, help string) *authzCounters {
	return &authzCounters{vec: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "authz",
		Name: name, Help: help}, []string{"policy"})}
}

func (a *authzCounters) inc(policy string) {
	if policy == "" {
		policy = PolicyDefault
	}
	if c, ok := a.m.Load(policy); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	if a.n.Load() >= MaxPolicies {
		policy = PolicyOther // may overshoot by the racing few: a bound, not a quota
	}
	c, loaded := a.m.LoadOrStore(policy, a.vec.WithLabelValues(clean(policy)))
	if !loaded {
		a.n.Add(1)
	}
	c.(prometheus.Counter).Inc()
}

// AuthzDenied counts one request or TCP connection denied by
// authorization (weft_authz_denied_total{policy}): policy names the
// denying policy, "" the default decision (PolicyDefault).
func (m *Metrics) AuthzDenied(policy string) {
	if m == nil {
		return
	}
	m.authzDenied.inc(policy)
}

// AuthzAudit counts one request matched by an AUDIT (RBAC LOG) policy
// (weft_authz_audit_total{policy}).
func (m *Metrics) AuthzAudit(policy string) {
	if m == nil {
		return
	}
	m.authzAudit.inc(policy)
}
