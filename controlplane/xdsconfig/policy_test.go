package xdsconfig

import (
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/model"
)

func TestResolvePrecedence(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dur := func(d time.Duration) *time.Duration { return &d }
	retry := func(n uint32) *model.Retry { return &model.Retry{Attempts: n} }
	svc := &model.Service{Name: "catalog", Namespace: "shop", Ports: []model.ServicePort{{Name: "http", Port: 80}, {Name: "admin", Port: 81}}}
	route := &model.HTTPRoute{Kind: "HTTPRoute", Name: "r", Namespace: "shop", Rules: []model.RouteRule{{Name: "a"}, {Name: "b"}}}
	pol := func(name string, created time.Time, target model.PolicyTarget, p model.TrafficPolicy) *model.TrafficPolicy {
		p.Name, p.Namespace, p.Created, p.Target = name, "shop", created, target
		return &p
	}
	onService := model.PolicyTarget{Kind: "Service", Name: "catalog", Namespace: "shop"}
	onPort := model.PolicyTarget{Kind: "Service", Name: "catalog", Namespace: "shop", Port: 80}
	onPortName := model.PolicyTarget{Kind: "Service", Name: "catalog", Namespace: "shop", SectionName: "http"}
	onRoute := model.PolicyTarget{Kind: "HTTPRoute", Name: "r", Namespace: "shop"}
	onRuleA := model.PolicyTarget{Kind: "HTTPRoute", Name: "r", Namespace: "shop", SectionName: "a"}
	onGRPC := model.PolicyTarget{Kind: "GRPCRoute", Name: "r", Namespace: "shop"}

	tests := []struct {
		name        string
		policies    []*model.TrafficPolicy
		rule        int
		ruleRetry   *model.Retry
		ruleTimeout time.Duration
		wantRetry   uint32 // 0: nil
		wantTimeout time.Duration
	}{
		{name: "nothing"},
		{name: "service", policies: []*model.TrafficPolicy{pol("s", t0, onService, model.TrafficPolicy{Retry: retry(1), Timeout: dur(time.Second)})},
			wantRetry: 1, wantTimeout: time.Second},
		{name: "port beats service", policies: []*model.TrafficPolicy{
			pol("s", t0, onService, model.TrafficPolicy{Retry: retry(1), Timeout: dur(time.Second)}),
			pol("p", t0.Add(time.Hour), onPort, model.TrafficPolicy{Retry: retry(2)}),
		}, wantRetry: 2, wantTimeout: time.Second},
		{name: "port by name", policies: []*model.TrafficPolicy{
			pol("s", t0, onService, model.TrafficPolicy{Retry: retry(1)}),
			pol("p", t0, onPortName, model.TrafficPolicy{Retry: retry(2)}),
		}, wantRetry: 2},
		{name: "route beats port", policies: []*model.TrafficPolicy{
			pol("p", t0, onPort, model.TrafficPolicy{Retry: retry(2), Timeout: dur(time.Second)}),
			pol("r", t0, onRoute, model.TrafficPolicy{Retry: retry(3)}),
		}, wantRetry: 3, wantTimeout: time.Second},
		{name: "rule beats route", policies: []*model.TrafficPolicy{
			pol("r", t0, onRoute, model.TrafficPolicy{Retry: retry(3)}),
			pol("ra", t0.Add(time.Hour), onRuleA, model.TrafficPolicy{Retry: retry(4)}),
		}, wantRetry: 4},
		{name: "rule policy of another rule", rule: 1, policies: []*model.TrafficPolicy{
			pol("r", t0, onRoute, model.TrafficPolicy{Retry: retry(3)}),
			pol("ra", t0, onRuleA, model.TrafficPolicy{Retry: retry(4)}),
		}, wantRetry: 3},
		{name: "route's own retry and timeout beat every policy", ruleRetry: retry(7), ruleTimeout: 2 * time.Second, policies: []*model.TrafficPolicy{
			pol("ra", t0, onRuleA, model.TrafficPolicy{Retry: retry(4), Timeout: dur(time.Second)}),
		}, wantRetry: 7, wantTimeout: 2 * time.Second},
		{name: "oldest wins per field", policies: []*model.TrafficPolicy{
			pol("new", t0.Add(time.Hour), onService, model.TrafficPolicy{Retry: retry(2), Timeout: dur(time.Second)}),
			pol("old", t0, onService, model.TrafficPolicy{Retry: retry(1)}),
		}, wantRetry: 1, wantTimeout: time.Second},
		{name: "same age: name order", policies: []*model.TrafficPolicy{
			pol("b", t0, onService, model.TrafficPolicy{Retry: retry(2)}),
			pol("a", t0, onService, model.TrafficPolicy{Retry: retry(1)}),
		}, wantRetry: 1},
		{name: "other kind of route", policies: []*model.TrafficPolicy{pol("g", t0, onGRPC, model.TrafficPolicy{Retry: retry(5)})}},
		{name: "other port", policies: []*model.TrafficPolicy{pol("p", t0, model.PolicyTarget{Kind: "Service", Name: "catalog", Namespace: "shop", Port: 81}, model.TrafficPolicy{Retry: retry(5)})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &model.State{Services: []*model.Service{svc}, Routes: []*model.HTTPRoute{route}, TrafficPolicies: tt.policies}
			ix, problems := newPolicyIndex(st)
			if len(problems) > 0 && tt.wantRetry != 0 {
				t.Fatalf("problems: %v", problems)
			}
			rule := route.Rules[tt.rule]
			rule.Retry, rule.Timeout = tt.ruleRetry, tt.ruleTimeout
			chain := append(ix.forRoute(route, &rule), ix.forService(svc, svc.Ports[0])...)
			got := resolveRoute(&rule, chain)
			var gotRetry uint32
			if got.Retry != nil {
				gotRetry = got.Retry.Attempts
			}
			var gotTimeout time.Duration
			if got.Timeout != nil {
				gotTimeout = *got.Timeout
			}
			if gotRetry != tt.wantRetry || gotTimeout != tt.wantTimeout {
				t.Errorf("retry %d timeout %v, want %d %v", gotRetry, gotTimeout, tt.wantRetry, tt.wantTimeout)
			}
		})
	}
}

func TestResolveClusterPerField(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := &model.Service{Name: "catalog", Namespace: "shop", Ports: []model.ServicePort{{Name: "http", Port: 80}}}
	st := &model.State{Services: []*model.Service{svc}, TrafficPolicies: []*model.TrafficPolicy{
		{Name: "whole", Namespace: "shop", Created: t0, Target: model.PolicyTarget{Kind: "Service", Name: "catalog"},
			LBType: model.LBRandom, Pool: &model.ConnectionPool{MaxConnections: 7}},
		{Name: "port", Namespace: "shop", Created: t0.Add(time.Hour), Target: model.PolicyTarget{Kind: "Service", Name: "catalog", Port: 80},
			LBType: model.LBRingHash, Hash: &model.HashOn{SourceIP: true}},
	}}
	ix, _ := newPolicyIndex(st)
	got := resolveCluster(ix.forService(svc, svc.Ports[0]))
	if got.LBType != model.LBRingHash || got.Hash == nil || !got.Hash.SourceIP || got.Pool == nil || got.Pool.MaxConnections != 7 {
		t.Errorf("resolved %+v", got)
	}
}

func TestPolicyTargetProblems(t *testing.T) {
	svc := &model.Service{Name: "catalog", Namespace: "shop", Ports: []model.ServicePort{{Name: "http", Port: 80}}}
	route := &model.HTTPRoute{Kind: "HTTPRoute", Name: "r", Namespace: "shop", Rules: []model.RouteRule{{Name: "a"}}}
	tests := []struct {
		target model.PolicyTarget
		lb     string
		want   string
	}{
		{target: model.PolicyTarget{Kind: "Service", Name: "catalog"}},
		{target: model.PolicyTarget{Kind: "Service", Name: "catalog", SectionName: "http"}},
		{target: model.PolicyTarget{Kind: "HTTPRoute", Name: "r", SectionName: "a"}},
		{target: model.PolicyTarget{Kind: "Service", Name: "gone"}, want: "does not exist"},
		{target: model.PolicyTarget{Kind: "Service", Name: "catalog", Port: 90}, want: "no port 90"},
		{target: model.PolicyTarget{Kind: "HTTPRoute", Name: "r", SectionName: "b"}, want: `no rule named "b"`},
		{target: model.PolicyTarget{Kind: "GRPCRoute", Name: "r"}, want: "does not exist"},
		{target: model.PolicyTarget{Kind: "HTTPRoute", Name: "r"}, lb: model.LBRandom, want: "apply only to a Service"},
	}
	for _, tt := range tests {
		p := &model.TrafficPolicy{Name: "p", Namespace: "shop", Target: tt.target, LBType: tt.lb}
		_, problems := newPolicyIndex(&model.State{Services: []*model.Service{svc}, Routes: []*model.HTTPRoute{route}, TrafficPolicies: []*model.TrafficPolicy{p}})
		got := strings.Join(problems, "\n")
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%+v: problems %q, want %q", tt.target, got, tt.want)
		}
	}
}

func TestTokenBucketRate(t *testing.T) {
	for _, tt := range []struct{ rps, burst uint32 }{
		{1, 0}, {3, 5}, {20, 20}, {21, 0}, {21, 5}, {100, 50}, {1000, 2000}, {1500, 1}, {999983, 0},
	} {
		b := tokenBucket(model.RateLimit{RequestsPerSecond: tt.rps, Burst: tt.burst})
		rate := float64(b.TokensPerFill.GetValue()) / b.FillInterval.AsDuration().Seconds()
		if d := rate/float64(tt.rps) - 1; d > 1e-5 || d < -1e-5 {
			t.Errorf("rps %d: %d tokens per %v = %.3f/s", tt.rps, b.TokensPerFill.GetValue(), b.FillInterval.AsDuration(), rate)
		}
		wantMax := tt.burst
		if wantMax == 0 {
			wantMax = tt.rps
		}
		if b.MaxTokens != wantMax || b.TokensPerFill.GetValue() > b.MaxTokens {
			t.Errorf("rps %d burst %d: max_tokens %d, tokens_per_fill %d", tt.rps, tt.burst, b.MaxTokens, b.TokensPerFill.GetValue())
		}
		if err := b.Validate(); err != nil {
			t.Errorf("rps %d: %v", tt.rps, err)
		}
	}
}
