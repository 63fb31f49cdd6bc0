package status

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/jwks"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/xdsconfig"
)

// Reasons of a RequestAuthentication's ResolvedRefs condition.
const (
	// ReasonJWKSFetchFailed: fetching a jwksUri fails (the keys fetched
	// before, if any, are served).
	ReasonJWKSFetchFailed = "JWKSFetchFailed"
	// ReasonNoUsableKeys: a key set has no key that suits its rule's
	// algorithms.
	ReasonNoUsableKeys = "NoUsableKeys"
	// ReasonJWKSPending: a jwksUri has not been fetched yet.
	ReasonJWKSPending = "Pending"
)

// KeySets tells what the control plane knows of each jwksUri it fetches
// (controlplane/jwks's Fetcher); false: the URI is not fetched (yet).
type KeySets interface {
	State(uri string) (jwks.State, bool)
}

var _ KeySets = (*jwks.Fetcher)(nil)

// KeySet is the state of one jwtRule's key set.
type KeySet struct {
	Issuer string
	// URI is the rule's jwksUri ("" for an inline key set).
	URI string
	// State is one of v1alpha1's JWKSReady, JWKSStale, JWKSFailed,
	// JWKSPending and JWKSNoUsableKeys.
	State string
	// Keys is the number of keys served that suit Algorithms, the rule's.
	Keys       int
	Algorithms []string
	// Fetched, FailingSince, NextAttempt and Err are the fetch's (see
	// jwks.State); zero for an inline key set.
	Fetched, FailingSince, NextAttempt time.Time
	Err                                string
}

// RequestAuthn returns the ResolvedRefs condition of a
// RequestAuthentication and the state of each of its rules' key sets.
func (r *Report) RequestAuthn(namespace, name string) (Condition, []KeySet, bool) {
	key := authzKey("RequestAuthentication", namespace, name)
	c, ok := r.keyConds[key]
	return c, r.keySets[key], ok
}

// computeKeySets judges the key set of every rule of every
// RequestAuthentication: keys (nil: nothing fetched yet) holds the
// fetches, and a key counts only if it suits the rule's algorithms, as
// the proxies receive it.
func computeKeySets(st *model.State, keys KeySets, rep *Report) {
	for _, ra := range st.RequestAuthns {
		sets := make([]KeySet, 0, len(ra.Rules))
		for _, rule := range ra.Rules {
			sets = append(sets, keySet(rule, keys))
		}
		key := authzKey("RequestAuthentication", ra.Namespace, ra.Name)
		rep.keySets[key] = sets
		rep.keyConds[key] = keySetsCondition(sets)
	}
}

func keySet(rule model.JWTRule, keys KeySets) KeySet {
	ks := KeySet{Issuer: rule.Issuer, URI: rule.JWKSURI, Algorithms: rule.Algorithms}
	src := rule.JWKS
	if rule.JWKSURI != "" {
		var s jwks.State
		ok := keys != nil
		if ok {
			s, ok = keys.State(rule.JWKSURI)
		}
		ks.Fetched, ks.FailingSince, ks.NextAttempt, ks.Err = s.Fetched, s.FailingSince, s.NextAttempt, s.Err
		src = s.Set
		switch {
		case !ok || (s.Set == "" && !s.Failing()):
			ks.State = v1alpha1.JWKSPending
			return ks
		case s.Set == "":
			ks.State = v1alpha1.JWKSFailed
			return ks
		case s.Failing():
			ks.State = v1alpha1.JWKSStale
		}
	}
	ks.Keys, _ = jwks.CountKeys(xdsconfig.FilterJWKS(src, rule.Algorithms))
	switch {
	case ks.Keys == 0:
		// Also when stale: what is served verifies nothing.
		ks.State = v1alpha1.JWKSNoUsableKeys
	case ks.State == "":
		ks.State = v1alpha1.JWKSReady
	}
	return ks
}

// keySetsCondition sums the key sets up as ResolvedRefs: True when every
// one is ready, else False with the reason of the worst and a message
// naming each that is not.
func keySetsCondition(sets []KeySet) Condition {
	var problems, ready []string
	reason := ""
	for _, ks := range sets {
		switch ks.State {
		case v1alpha1.JWKSReady:
			ready = append(ready, ks.describe())
			continue
		case v1alpha1.JWKSFailed, v1alpha1.JWKSStale:
			reason = ReasonJWKSFetchFailed
		case v1alpha1.JWKSNoUsableKeys:
			if reason != ReasonJWKSFetchFailed {
				reason = ReasonNoUsableKeys
			}
		case v1alpha1.JWKSPending:
			if reason == "" {
				reason = ReasonJWKSPending
			}
		}
		problems = append(problems, ks.describe())
	}
	if len(problems) > 0 {
		return Condition{Type: "ResolvedRefs", Reason: reason, Message: strings.Join(problems, "; ")}
	}
	return Condition{Type: "ResolvedRefs", OK: true, Reason: "ResolvedRefs", Message: strings.Join(ready, "; ")}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// describe says what the key set's state means for its issuer's tokens.
func (ks KeySet) describe() string {
	s := fmt.Sprintf("issuer %s: ", ks.Issuer)
	from := "the inline jwks"
	if ks.URI != "" {
		from = ks.URI
	}
	retry := ", retrying now" // an attempt is under way
	if !ks.NextAttempt.IsZero() {
		retry = ", next attempt at " + stamp(ks.NextAttempt)
	}
	switch ks.State {
	case v1alpha1.JWKSReady:
		if ks.URI == "" {
			return s + fmt.Sprintf("%s, from the inline jwks", plural(ks.Keys, "key"))
		}
		return s + fmt.Sprintf("%s fetched from %s at %s", plural(ks.Keys, "key"), ks.URI, stamp(ks.Fetched))
	case v1alpha1.JWKSPending:
		return s + fmt.Sprintf("%s not fetched yet; its tokens are refused (401) until it is", ks.URI)
	case v1alpha1.JWKSFailed:
		return s + fmt.Sprintf("fetching %s fails (since %s): %s; never fetched, its tokens are refused (401)%s",
			ks.URI, stamp(ks.FailingSince), ks.Err, retry)
	case v1alpha1.JWKSStale:
		return s + fmt.Sprintf("fetching %s fails (since %s): %s; serving %s fetched at %s%s",
			ks.URI, stamp(ks.FailingSince), ks.Err, plural(ks.Keys, "key"), stamp(ks.Fetched), retry)
	}
	// NoUsableKeys
	msg := fmt.Sprintf("no key of %s suits algorithms %s (a key needs the algorithm's kty and crv, and its alg if it names one); its tokens are refused (401)",
		from, strings.Join(ks.Algorithms, ", "))
	if ks.Failing() {
		msg += fmt.Sprintf("; fetching it fails (since %s): %s%s", stamp(ks.FailingSince), ks.Err, retry)
	}
	return s + msg
}

// Failing reports whether fetching the key set fails.
func (ks KeySet) Failing() bool { return ks.Err != "" }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func metaTime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}

// jwksStatus is the status.jwks of a RequestAuthentication.
func jwksStatus(sets []KeySet) []v1alpha1.JWKSStatus {
	out := make([]v1alpha1.JWKSStatus, 0, len(sets))
	for _, ks := range sets {
		out = append(out, v1alpha1.JWKSStatus{
			Issuer: ks.Issuer, JWKSURI: ks.URI, State: ks.State, Keys: ks.Keys,
			FetchedAt: metaTime(ks.Fetched), FailingSince: metaTime(ks.FailingSince),
			Error: ks.Err, NextAttempt: metaTime(ks.NextAttempt),
		})
	}
	return out
}
