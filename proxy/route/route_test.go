package route

import (
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func table() *Table {
	cl := func(names ...string) xdsresource.RouteAction {
		a := xdsresource.RouteAction{}
		for _, n := range names {
			a.Clusters = append(a.Clusters, xdsresource.WeightedCluster{Name: n, Weight: 1})
		}
		return a
	}
	return Compile(&xdsresource.RouteConfiguration{
		Name: "outbound",
		VirtualHosts: []xdsresource.VirtualHost{
			{Name: "catalog", Domains: []string{"catalog.shop", "catalog.shop:80"}, Routes: []xdsresource.Route{
				{Name: "exact", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathExact, Path: "/health", CaseSensitive: true}, Action: cl("health")},
				{Name: "regex", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathRegex, PathRegex: regexp.MustCompile(`^(?:/items/[0-9]+)$`)}, Action: cl("items")},
				{Name: "segment", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathSeparatedPrefix, Path: "/api", CaseSensitive: true,
					Headers: []xdsresource.HeaderMatcher{{Name: ":method", String: xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: "POST"}}}}, Action: cl("api-post")},
				{Name: "header", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/", CaseSensitive: true,
					Headers: []xdsresource.HeaderMatcher{{Name: "x-canary", String: xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: "yes"}}}}, Action: cl("canary")},
				{Name: "query", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/", CaseSensitive: true,
					QueryParams: []xdsresource.QueryParamMatcher{{Name: "debug", String: xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: "1"}}}}, Action: cl("debug")},
				{Name: "all", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/", CaseSensitive: true}, Action: cl("default")},
			}},
			{Name: "wild", Domains: []string{"*.example.com"}, Routes: []xdsresource.Route{{Name: "w", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/"}, Action: cl("wild")}}},
			{Name: "any", Domains: []string{"*"}, Routes: []xdsresource.Route{{Name: "a", Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/"}, Action: cl("any")}}},
		},
	})
}

func TestMatch(t *testing.T) {
	tb := table()
	for _, tc := range []struct {
		method, target, host string
		headers              map[string]string
		want                 string
	}{
		{"GET", "/health", "catalog.shop", nil, "health"},
		{"GET", "/HEALTH", "catalog.shop", nil, "default"},
		{"GET", "/items/42", "catalog.shop:80", nil, "items"},
		{"GET", "/items/4x", "catalog.shop", nil, "default"},
		{"POST", "/api", "catalog.shop", nil, "api-post"},
		{"POST", "/api/v1", "catalog.shop", nil, "api-post"},
		{"POST", "/apis", "catalog.shop", nil, "default"},
		{"GET", "/api", "catalog.shop", nil, "default"},
		{"GET", "/x", "catalog.shop", map[string]string{"X-Canary": "yes"}, "canary"},
		{"GET", "/x?debug=1", "catalog.shop", nil, "debug"},
		{"GET", "/x?debug=2", "catalog.shop", nil, "default"},
		{"GET", "/", "CATALOG.SHOP.", nil, "default"},
		{"GET", "/", "catalog.shop.:80", nil, "default"},
		{"GET", "/", "a.example.com", nil, "wild"},
		{"GET", "/", "example.com", nil, "any"},
		{"GET", "/", "other", nil, "any"},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		r.Host = tc.host
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		vh := tb.VirtualHost(r.Host)
		if vh == nil {
			t.Errorf("%s %s host %s: no virtual host", tc.method, tc.target, tc.host)
			continue
		}
		rt := vh.Match(r)
		if rt == nil || rt.PickCluster() != tc.want {
			got := "<none>"
			if rt != nil {
				got = rt.PickCluster()
			}
			t.Errorf("%s %s host %s: got %s, want %s", tc.method, tc.target, tc.host, got, tc.want)
		}
	}
}

func TestWeightedSplit(t *testing.T) {
	rt := compileRoute(&xdsresource.Route{Action: xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{
		{Name: "v1", Weight: 90}, {Name: "v2", Weight: 10}, {Name: "v3", Weight: 0},
	}}})
	counts := map[string]int{}
	const n = 100000
	for range n {
		counts[rt.PickCluster()]++
	}
	if counts["v3"] != 0 {
		t.Fatalf("weight 0 picked %d times", counts["v3"])
	}
	if share := float64(counts["v2"]) / n; share < 0.09 || share > 0.11 {
		t.Fatalf("v2 share %.3f, want 0.10 (%v)", share, counts)
	}
	none := compileRoute(&xdsresource.Route{Action: xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{{Name: "a", Weight: 0}}}})
	if none.DirectStatus != 503 || none.PickCluster() != "" {
		t.Fatalf("all-zero split: status %d cluster %q", none.DirectStatus, none.PickCluster())
	}
}

func TestNoVirtualHost(t *testing.T) {
	tb := Compile(&xdsresource.RouteConfiguration{Name: "x", VirtualHosts: []xdsresource.VirtualHost{{Name: "a", Domains: []string{"a"}}}})
	if tb.VirtualHost("b") != nil {
		t.Fatal("unexpected virtual host")
	}
}
