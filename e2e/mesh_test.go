package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func serviceYAML(name, selector string, targetPort string) string {
	return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: %s, namespace: shop}
spec:
  selector: {%s}
  ports: [{port: 80, targetPort: %s}]
---
`, name, selector, targetPort)
}

func routeYAML(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-split, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: catalog, port: 80}]
  rules:
  - backendRefs:
    - {name: catalog-v1, port: 80, weight: %d}
    - {name: catalog-v2, port: 80, weight: %d}
`, v1, v2)
}

// proxyClient sends requests through a sidecar's outbound listener, as an
// app with HTTP_PROXY set would.
func proxyClient(s *sidecar) *http.Client {
	u, _ := url.Parse("http://" + s.outbound)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 32}}
}

// canaryMesh is catalog v1 and v2 (each a backend with a sidecar), the
// Services catalog, catalog-v1, catalog-v2, and a client sidecar.
type canaryMesh struct {
	cp     *controlPlane
	v1, v2 *backend
	client *sidecar
}

func startCanaryMesh(t *testing.T, cp *controlPlane) *canaryMesh {
	t.Helper()
	m := &canaryMesh{cp: cp, v1: startBackend(t, "v1"), v2: startBackend(t, "v2")}
	if m.v1.port(t) == m.v2.port(t) {
		t.Fatal("ports collide")
	}
	// Both versions must serve the same targetPort: give v2 a listener on
	// v1's port number on another loopback address is not portable, so
	// each version's Service points at its own port and the shared
	// Service is not used for traffic.
	cp.apply(t, serviceYAML("catalog", "app: catalog", m.v1.port(t))+
		serviceYAML("catalog-v1", "app: catalog, version: v1", m.v1.port(t))+
		serviceYAML("catalog-v2", "app: catalog, version: v2", m.v2.port(t))+routeYAML(100, 0))
	startSidecar(t, cp, sidecarOpts{workload: "catalog-v1-1", namespace: "shop", labels: []string{"app=catalog", "version=v1"}, appPort: m.v1.port(t)})
	startSidecar(t, cp, sidecarOpts{workload: "catalog-v2-1", namespace: "shop", labels: []string{"app=catalog", "version=v2"}, appPort: m.v2.port(t)})
	m.client = startSidecar(t, cp, sidecarOpts{workload: "web-1", namespace: "shop", labels: []string{"app=web"}, upstreams: []string{"catalog.shop"}})
	c := proxyClient(m.client)
	eventually(t, 10*time.Second, func() error {
		code, who, body, err := get(c, "http://catalog.shop/items", "")
		if err != nil {
			return err
		}
		if code != 200 || who != "v1" {
			return fmt.Errorf("got %d from %q: %s", code, who, body)
		}
		return nil
	})
	return m
}

func TestRequestThroughTwoProxies(t *testing.T) {
	cp := newControlPlane(t)
	reviews := startBackend(t, "reviews")
	cp.apply(t, serviceYAML("reviews", "app: reviews", reviews.port(t)))
	startSidecar(t, cp, sidecarOpts{workload: "reviews-1", namespace: "shop", labels: []string{"app=reviews"}, appPort: reviews.port(t)})
	client := startSidecar(t, cp, sidecarOpts{workload: "web-1", namespace: "shop", labels: []string{"app=web"}, upstreams: []string{"reviews.shop"}})

	// As an HTTP proxy (absolute-form request line).
	c := proxyClient(client)
	eventually(t, 10*time.Second, func() error {
		code, who, body, err := get(c, "http://reviews.shop/reviews/1?x=y", "")
		if err != nil {
			return err
		}
		if code != 200 || who != "reviews" || !strings.Contains(body, "GET /reviews/1 host=reviews.shop") {
			return fmt.Errorf("got %d %q %q", code, who, body)
		}
		return nil
	})
	// Through the local upstream port: the proxy sets the authority.
	code, who, body, err := get(http.DefaultClient, "http://"+client.upstreams["reviews.shop"]+"/a", "")
	if err != nil || code != 200 || who != "reviews" || !strings.Contains(body, "host=reviews.shop") {
		t.Fatalf("upstream port: %d %q %q %v", code, who, body, err)
	}
	// HTTP/2 with prior knowledge (h2c) from the app to its sidecar.
	h2 := &http.Transport{Protocols: new(http.Protocols)}
	h2.Protocols.SetUnencryptedHTTP2(true)
	req, _ := http.NewRequest(http.MethodGet, "http://"+client.outbound+"/h2", nil)
	req.Host = "reviews.shop:80"
	resp, err := (&http.Client{Transport: h2, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("h2c: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("x-backend") != "reviews" {
		t.Fatalf("h2c: %s proto %d backend %q", resp.Status, resp.ProtoMajor, resp.Header.Get("x-backend"))
	}
	// An unknown host gets 404 from the proxy, saying why.
	code, _, body, err = get(c, "http://nowhere.shop/", "")
	if err != nil || code != 404 || !strings.Contains(body, "no route for host") {
		t.Fatalf("unknown host: %d %q %v", code, body, err)
	}
	// The control plane lists both workloads as connected.
	out, err := cp.weft(t, "", "get", "workloads")
	if err != nil || !strings.Contains(out, "reviews-1") || !strings.Contains(out, "web-1") {
		t.Fatalf("weft get workloads: %v\n%s", err, out)
	}
}

// TestRouteChangeShiftsTraffic keeps requests in flight while the route
// moves all traffic from v1 to v2: none may fail.
func TestRouteChangeShiftsTraffic(t *testing.T) {
	cp := newControlPlane(t)
	m := startCanaryMesh(t, cp)
	c := proxyClient(m.client)

	var (
		sent, failed   atomic.Int64
		mu             sync.Mutex
		firstErr       string
		switched       atomic.Bool
		v1AfterSettled atomic.Int64
		settled        atomic.Bool
		seenV2         atomic.Int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && sent.Load() < 3000 {
				sent.Add(1)
				code, who, body, err := get(c, "http://catalog.shop/", "")
				if err != nil || code != 200 {
					failed.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = fmt.Sprintf("%d %q %v", code, body, err)
					}
					mu.Unlock()
					continue
				}
				if who == "v2" {
					seenV2.Add(1)
					if !switched.Load() {
						failed.Add(1)
					}
				}
				if who == "v1" && settled.Load() {
					v1AfterSettled.Add(1)
				}
			}
		}()
	}
	// Let traffic run, then switch.
	eventually(t, 20*time.Second, func() error {
		if sent.Load() < 250 {
			return fmt.Errorf("only %d sent", sent.Load())
		}
		return nil
	})
	switched.Store(true)
	before := sent.Load()
	m.cp.apply(t, routeYAML(0, 100))
	eventually(t, 10*time.Second, func() error {
		if seenV2.Load() == 0 {
			return fmt.Errorf("no request reached v2 yet")
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	settled.Store(true)
	eventually(t, 20*time.Second, func() error {
		if sent.Load() < before+250 {
			return fmt.Errorf("only %d sent after the change", sent.Load()-before)
		}
		return nil
	})
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across the route change; first: %s", failed.Load(), sent.Load(), firstErr)
	}
	if v1AfterSettled.Load() != 0 {
		t.Fatalf("%d requests still reached v1 after the change settled", v1AfterSettled.Load())
	}
	t.Logf("%d requests, %d before the change, 0 failed", sent.Load(), before)
}

// TestCanarySplit checks a 90/10 route over 1,000 requests.
func TestCanarySplit(t *testing.T) {
	cp := newControlPlane(t)
	m := startCanaryMesh(t, cp)
	m.cp.apply(t, routeYAML(90, 10))
	c := proxyClient(m.client)
	eventually(t, 10*time.Second, func() error {
		_, who, _, err := get(c, "http://catalog.shop/", "")
		if err != nil || who != "v2" {
			return fmt.Errorf("v2 not reached yet")
		}
		return nil
	})
	counts := map[string]int{}
	for range 1000 {
		code, who, body, err := get(c, "http://catalog.shop/", "")
		if err != nil || code != 200 {
			t.Fatalf("request failed: %d %q %v", code, body, err)
		}
		counts[who]++
	}
	// 10 % of 1,000: binomial sd ≈ 9.5; ±4 sd.
	if counts["v2"] < 62 || counts["v2"] > 138 {
		t.Fatalf("v2 got %d of 1000 requests, want about 100 (%v)", counts["v2"], counts)
	}
	t.Logf("split: %v", counts)
}

func TestInvalidResourceRefusedOldConfigServes(t *testing.T) {
	cp := newControlPlane(t)
	m := startCanaryMesh(t, cp)
	bad := `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-split, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: catalog, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: "no-slash"}}]
    backendRefs:
    - {name: catalog-v2, port: 80, weight: 2000000}
`
	out, err := cp.weft(t, bad, "apply", "-f", "-")
	if err == nil {
		t.Fatalf("invalid route accepted:\n%s", out)
	}
	for _, want := range []string{"spec.rules[0].matches[0].path.value", "spec.rules[0].backendRefs[0].weight", "refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("error output lacks %q:\n%s", want, out)
		}
	}
	// Unknown fields and broken YAML are refused too, naming the problem.
	out, err = cp.weft(t, strings.Replace(routeYAML(0, 100), "parentRefs", "parentRefz", 1), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "parentRefz") {
		t.Fatalf("unknown field: err=%v\n%s", err, out)
	}
	out, err = cp.weft(t, "kind: [", "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "document 1") {
		t.Fatalf("broken yaml: err=%v\n%s", err, out)
	}
	// The stored route is the old one, and traffic still follows it.
	out, err = cp.weft(t, "", "get", "httproute", "catalog-split", "-n", "shop", "-o", "json")
	if err != nil || !strings.Contains(out, `"weight": 100`) {
		t.Fatalf("stored route changed: %v\n%s", err, out)
	}
	c := proxyClient(m.client)
	for range 50 {
		code, who, body, err := get(c, "http://catalog.shop/", "")
		if err != nil || code != 200 || who != "v1" {
			t.Fatalf("old config not serving: %d %q %q %v", code, who, body, err)
		}
	}
}

func TestControlPlaneLossKeepsTraffic(t *testing.T) {
	dataDir := t.TempDir()
	addrs := newAddrs(t)
	cp := startControlPlane(t, dataDir, addrs)
	m := startCanaryMesh(t, cp)
	c := proxyClient(m.client)

	cp.stop(9, time.Second) // SIGKILL: no goodbye to the proxies
	for i := range 200 {
		code, who, body, err := get(c, "http://catalog.shop/", "")
		if err != nil || code != 200 || who != "v1" {
			t.Fatalf("request %d without a control plane: %d %q %q %v", i, code, who, body, err)
		}
	}
	// A new control plane on the same data: the proxies reconnect and get
	// new config.
	cp2 := startControlPlane(t, dataDir, addrs)
	eventually(t, 20*time.Second, func() error {
		out, err := cp2.weft(t, "", "get", "proxies")
		if err != nil {
			return err
		}
		for _, n := range []string{"web-1.shop", "catalog-v1-1.shop", "catalog-v2-1.shop"} {
			if !strings.Contains(out, n) {
				return fmt.Errorf("%s not reconnected:\n%s", n, out)
			}
		}
		return nil
	})
	cp2.apply(t, routeYAML(0, 100))
	eventually(t, 10*time.Second, func() error {
		code, who, _, err := get(c, "http://catalog.shop/", "")
		if err != nil || code != 200 || who != "v2" {
			return fmt.Errorf("got %d %q %v", code, who, err)
		}
		return nil
	})
}

// TestEndpointRemovedAfterGrace stops a backend's sidecar: after the
// registration grace its endpoint leaves, and the route's share for it
// answers 503 instead of hanging.
func TestEndpointRemovedAfterGrace(t *testing.T) {
	cp := newControlPlane(t)
	reviews := startBackend(t, "reviews")
	cp.apply(t, serviceYAML("reviews", "app: reviews", reviews.port(t)))
	sc := startSidecar(t, cp, sidecarOpts{workload: "reviews-1", namespace: "shop", labels: []string{"app=reviews"}, appPort: reviews.port(t)})
	client := startSidecar(t, cp, sidecarOpts{workload: "web-1", namespace: "shop", labels: []string{"app=web"}})
	c := proxyClient(client)
	eventually(t, 10*time.Second, func() error {
		code, _, _, err := get(c, "http://reviews.shop/", "")
		if err != nil || code != 200 {
			return fmt.Errorf("got %d %v", code, err)
		}
		return nil
	})
	sc.stop(15, 5*time.Second)
	eventually(t, 15*time.Second, func() error {
		code, _, body, err := get(c, "http://reviews.shop/", "")
		if err != nil || code != 503 || !strings.Contains(body, "no healthy upstream") {
			return fmt.Errorf("got %d %q %v", code, body, err)
		}
		return nil
	})
	out, _ := cp.weft(t, "", "get", "workloads")
	if strings.Contains(out, "reviews-1") {
		t.Fatalf("reviews-1 still registered after the grace period:\n%s", out)
	}
}

// TestRouteToNewServiceWithoutErrors: one apply adds a Service and moves
// the route to it while requests flow; the proxies keep the old route
// until the new cluster's endpoints arrive, so nothing fails.
func TestRouteToNewServiceWithoutErrors(t *testing.T) {
	cp := newControlPlane(t)
	m := startCanaryMesh(t, cp)
	c := proxyClient(m.client)
	l := startLoad(c, "http://catalog.shop/", 6)
	time.Sleep(500 * time.Millisecond)
	cp.apply(t, serviceYAML("catalog-next", "app: catalog, version: v2", m.v2.port(t))+`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-split, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: catalog, port: 80}]
  rules:
  - backendRefs: [{name: catalog-next, port: 80}]
`)
	eventually(t, 10*time.Second, func() error {
		if _, who, _, err := get(c, "http://catalog.shop/", ""); err != nil || who != "v2" {
			return fmt.Errorf("not on catalog-next yet (%q, %v)", who, err)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	l.finish(t)
}

// TestRouteProblemsShown: a route to a Service that does not exist is
// accepted (it may appear later), its share answers 500, and `weft get
// httproutes` says so.
func TestRouteProblemsShown(t *testing.T) {
	cp := newControlPlane(t)
	reviews := startBackend(t, "reviews")
	cp.apply(t, serviceYAML("reviews", "app: reviews", reviews.port(t))+`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-next, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: reviews, port: 80}]
  rules:
  - backendRefs: [{name: reviews-v9, port: 80}]
`)
	startSidecar(t, cp, sidecarOpts{workload: "reviews-1", namespace: "shop", labels: []string{"app=reviews"}, appPort: reviews.port(t)})
	client := startSidecar(t, cp, sidecarOpts{workload: "web-1", namespace: "shop", labels: []string{"app=web"}})
	eventually(t, 10*time.Second, func() error {
		code, _, body, err := get(proxyClient(client), "http://reviews.shop/", "")
		if err != nil || code != 500 || !strings.Contains(body, "does not exist") {
			return fmt.Errorf("got %d %q %v", code, body, err)
		}
		return nil
	})
	out, err := cp.weft(t, "", "get", "httproutes")
	if err != nil || !strings.Contains(out, "backend reviews-v9.shop:80 does not exist") {
		t.Fatalf("weft get httproutes does not report the missing backend: %v\n%s", err, out)
	}
}
