package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// instance is one app instance of a Service, served on its own loopback IP
// so that every instance of the Service has the same app port.
type instance struct {
	name string
	addr string
	hits atomic.Int64
	// fail, when set, makes the handler answer its status instead.
	fail atomic.Int64
}

// fleet is the instances of one Service and their sidecars.
type fleet struct {
	service string
	port    string // the app port every instance listens on
	inst    []*instance
}

var nextIP atomic.Int32

// startFleet starts n instances of a Service behind sidecars. handler
// builds each instance's handler (nil: answer with the instance name);
// labels adds labels to instance i's workload. The Service must be applied
// with targetPort f.port (see fleetServiceYAML) before traffic flows.
func startFleet(t *testing.T, cp *controlPlane, service string, n int, handler func(i int, in *instance) http.Handler, labels func(i int) []string) *fleet {
	t.Helper()
	f := &fleet{service: service}
	var port string
	for attempt := 0; attempt < 20 && f.port == ""; attempt++ {
		port = portOf(t, freeAddr(t))
		var lns []net.Listener
		ok := true
		base := int(nextIP.Add(int32(n)))
		for i := range n {
			ip := fmt.Sprintf("127.0.%d.%d", 70+base/200, 10+(base+i)%200)
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		if !ok {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		f.port = port
		for i, ln := range lns {
			in := &instance{name: fmt.Sprintf("%s-%d", service, i), addr: ln.Addr().String()}
			var h http.Handler
			if handler != nil {
				h = handler(i, in)
			}
			srv := &http.Server{Handler: counting(in, h)}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			f.inst = append(f.inst, in)
		}
	}
	if f.port == "" {
		t.Fatal("no common free port for the fleet")
	}
	return f
}

// counting counts hits, applies a forced failure, then runs h (or answers
// with the instance's name).
func counting(in *instance, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.hits.Add(1)
		w.Header().Set("x-backend", in.name)
		if code := in.fail.Load(); code != 0 {
			w.WriteHeader(int(code))
			io.WriteString(w, "forced failure")
			return
		}
		if h != nil {
			h.ServeHTTP(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s %s host=%s", in.name, r.Method, r.URL.RequestURI(), r.Host)
	})
}

// sidecars starts one sidecar per instance with labels app=SERVICE plus
// extra(i).
func (f *fleet) sidecars(t *testing.T, cp *controlPlane, extra func(i int) []string) {
	t.Helper()
	for i, in := range f.inst {
		ip, _, _ := net.SplitHostPort(in.addr)
		labels := []string{"app=" + f.service}
		if extra != nil {
			labels = append(labels, extra(i)...)
		}
		startSidecar(t, cp, sidecarOpts{workload: in.name, namespace: "shop", identity: f.service, labels: labels,
			appPort: f.port, extra: []string{"--app-address", ip}})
	}
}

func (f *fleet) hits() map[string]int64 {
	out := map[string]int64{}
	for _, in := range f.inst {
		out[in.name] = in.hits.Load()
	}
	return out
}

func (f *fleet) totalHits() int64 {
	var n int64
	for _, in := range f.inst {
		n += in.hits.Load()
	}
	return n
}

func (f *fleet) resetHits() {
	for _, in := range f.inst {
		in.hits.Store(0)
	}
}

// fleetServiceYAML is a Service on port 80 selecting app=NAME (plus extra
// selector pairs) with the fleet's app port.
func fleetServiceYAML(name, port, extraSelector string) string {
	return appServiceYAML(name, name, port, extraSelector)
}

// appServiceYAML is a Service NAME on port 80 selecting app=APP (plus extra
// selector pairs) with the fleet's app port.
func appServiceYAML(name, app, port, extraSelector string) string {
	sel := "app: " + app
	if extraSelector != "" {
		sel += ", " + extraSelector
	}
	return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: %s, namespace: shop}
spec:
  selector: {%s}
  ports: [{name: http, port: 80, targetPort: %s}]
---
`, name, sel, port)
}

// result is one request's outcome.
type result struct {
	code    int
	backend string
	body    string
	header  http.Header
	latency time.Duration
	err     error
}

// send sends n requests with conc workers; mk builds request i.
func send(c *http.Client, n, conc int, mk func(i int) *http.Request) []result {
	out := make([]result, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req := mk(i)
				start := time.Now()
				resp, err := c.Do(req)
				r := result{err: err}
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					r.code, r.backend, r.body, r.header = resp.StatusCode, resp.Header.Get("x-backend"), string(b), resp.Header
				}
				r.latency = time.Since(start)
				out[i] = r
			}
		}()
	}
	wg.Wait()
	return out
}

func getReq(url string, headers ...string) *http.Request {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// statusCounts counts results by status (0 for transport errors).
func statusCounts(rs []result) map[int]int {
	out := map[int]int{}
	for _, r := range rs {
		out[r.code]++
	}
	return out
}

func backends(rs []result) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		out[r.backend]++
	}
	return out
}

// firstErr describes the first failed result, for messages.
func firstErr(rs []result) string {
	for _, r := range rs {
		if r.err != nil {
			return r.err.Error()
		}
		if r.code != 200 {
			return strconv.Itoa(r.code) + " " + strings.TrimSpace(r.body) + " x-weft-error=" + r.header.Get("x-weft-error")
		}
	}
	return ""
}

// within reports whether got/total is within tol of want (fractions).
func within(got, total int, want, tol float64) bool {
	f := float64(got) / float64(total)
	return f >= want-tol && f <= want+tol
}

// waitFor polls until the predicate over a small batch holds.
func waitFor(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
}
