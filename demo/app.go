package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// AppOptions configure a demo service.
type AppOptions struct {
	Service string
	Version string
	Listen  string
	// Calls are the hosts (NAME.NAMESPACE) it calls for every request,
	// through its sidecar: the local upstream port from WEFT_UPSTREAM_<HOST>
	// when set, else the outbound listener (WEFT_OUTBOUND) as an HTTP proxy.
	Calls []string
	// Work is the mean extra time each request takes (uniform 0..2×Work).
	Work time.Duration
	// ErrorRate is the share of requests answered with 503, evenly spread
	// (at 0.1, every tenth request): a retry of a failed request is not
	// failed again by chance, so the demo shows retries hiding every
	// failure, run after run.
	ErrorRate float64
}

// Reply is what a demo service answers.
type Reply struct {
	Service string  `json:"service"`
	Version string  `json:"version"`
	Calls   []Reply `json:"calls,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// RunApp serves a demo service until ctx ends.
func RunApp(ctx context.Context, o AppOptions) error {
	targets := map[string]string{}
	proxyURL := os.Getenv("WEFT_OUTBOUND")
	for _, host := range o.Calls {
		if addr := os.Getenv(xdsmeta.UpstreamEnv(host)); addr != "" {
			targets[host] = "http://" + addr + "/"
		} else if proxyURL != "" {
			targets[host] = "proxy"
		} else {
			return fmt.Errorf("demo app: no way to reach %s: set %s or WEFT_OUTBOUND (run it with weft run)", host, xdsmeta.UpstreamEnv(host))
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	direct := map[string]bool{}
	for _, t := range targets {
		if u, err := url.Parse(t); err == nil && t != "proxy" {
			direct[u.Host] = true
		}
	}
	if proxyURL != "" {
		u, err := url.Parse(proxyURL)
		if err != nil {
			return fmt.Errorf("demo app: WEFT_OUTBOUND %q: %w", proxyURL, err)
		}
		// Local upstream ports are the sidecar already: reach them
		// directly; everything else goes through the outbound listener.
		tr.Proxy = func(r *http.Request) (*url.URL, error) {
			if direct[r.URL.Host] {
				return nil, nil
			}
			return u, nil
		}
	}
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: tr}

	var served atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if o.Work > 0 {
			time.Sleep(time.Duration(rand.Int64N(int64(2*o.Work) + 1)))
		}
		rep := Reply{Service: o.Service, Version: o.Version}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-demo-version", o.Version)
		if n := served.Add(1); o.ErrorRate > 0 && math.Floor(float64(n)*o.ErrorRate) > math.Floor(float64(n-1)*o.ErrorRate) {
			w.WriteHeader(http.StatusServiceUnavailable)
			rep.Error = "injected failure"
			json.NewEncoder(w).Encode(rep)
			return
		}
		status := http.StatusOK
		for _, host := range o.Calls {
			target := targets[host]
			if target == "proxy" {
				target = "http://" + host + "/"
			}
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
			if id := r.Header.Get("x-request-id"); id != "" {
				req.Header.Set("x-request-id", id)
			}
			resp, err := httpc.Do(req)
			if err != nil {
				rep.Calls = append(rep.Calls, Reply{Service: host, Error: err.Error()})
				status = http.StatusBadGateway
				continue
			}
			var sub Reply
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if err := json.Unmarshal(body, &sub); err != nil || resp.StatusCode >= 500 {
				sub = Reply{Service: host, Error: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))}
				status = http.StatusBadGateway
			}
			rep.Calls = append(rep.Calls, sub)
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(rep)
	})
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("demo app: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
