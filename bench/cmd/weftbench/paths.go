package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// pair is one running proxy pair (client side, server side).
type pair struct {
	client, server *proc
	// readyMS are start-to-ready times of Weft proxies (server, client).
	readyMS []float64
}

func (p *pair) stop() {
	if p == nil {
		return
	}
	if p.client != nil {
		p.client.stop(8 * time.Second)
	}
	if p.server != nil {
		p.server.stop(8 * time.Second)
	}
}

// path is one way from fortio to the app.
type path struct {
	name  string // key in the results
	title string // row of the table
	url   string // fortio's target, from the client namespace
	max   bool   // a max-throughput run (-qps 0)
	start func(tag string) (*pair, error)
}

// env holds what every path needs: binaries, directories, the namespaces'
// HTTP clients.
type env struct {
	cfg        *config
	work       string // temp dir: configs, logs, fortio JSON
	cliHTTP    *http.Client
	srvHTTP    *http.Client
	tokens     map[string][2]string // identity → token, CA pin
	weftProxy  string               // binary used for Weft's proxies
	profileDir string               // set: Weft proxies write profiles here
}

func nsClientHTTP(d *nsDialer) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// waitHTTP polls url (through c) until it answers 200.
func waitHTTP(c *http.Client, url string, timeout time.Duration, p ...*proc) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		for _, x := range p {
			if x != nil && x.exited() {
				return fmt.Errorf("%s exited:\n%s", x.name, x.tail())
			}
		}
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(5 * time.Millisecond)
	}
	msg := fmt.Sprintf("%s not 200 after %s: %s", url, timeout, last)
	for _, x := range p {
		if x != nil {
			msg += "\n--- " + x.name + ":\n" + x.tail()
		}
	}
	return fmt.Errorf("%s", msg)
}

// ---- Weft ----

const weftServices = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: echo, namespace: bench}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: HTTP}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: echo-tcp, namespace: bench}
spec:
  selector: {app: echo}
  ports: [{name: tcp, port: 9000, targetPort: 8081, protocol: TCP}]
`

// startWeftControl starts the control plane in the server namespace (on
// the load CPU: it is idle during the runs), applies the Services and
// creates the join tokens.
func (e *env) startWeftControl() (*proc, error) {
	data := filepath.Join(e.work, "weft-data")
	cp, err := startIn(e.work, "weft-control", nsServer, e.cfg.loadCPU, nil, e.cfg.weft, "control", "--data-dir", data,
		"--xds-addr", ipServer+":15010", "--issuer-addr", ipServer+":15012", "--api-addr", "127.0.0.1:15080", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(e.srvHTTP, "http://127.0.0.1:15080/healthz", 30*time.Second, cp); err != nil {
		return cp, err
	}
	f := filepath.Join(e.work, "services.yaml")
	if err := os.WriteFile(f, []byte(weftServices), 0o644); err != nil {
		return cp, err
	}
	out, err := exec.Command("ip", "netns", "exec", nsServer, e.cfg.weft, "--server", "http://127.0.0.1:15080", "apply", "-f", f).CombinedOutput()
	if err != nil {
		return cp, fmt.Errorf("weft apply: %v\n%s", err, out)
	}
	e.tokens = map[string][2]string{}
	for _, id := range []string{"echo", "client"} {
		tok, pin, err := createToken(e.srvHTTP, "http://127.0.0.1:15080", "bench", id)
		if err != nil {
			return cp, err
		}
		e.tokens[id] = [2]string{tok, pin}
	}
	return cp, nil
}

func createToken(c *http.Client, api, ns, identity string) (string, string, error) {
	body, _ := json.Marshal(map[string]string{"namespace": ns, "identity": identity, "ttl": "4h"})
	resp, err := c.Post(api+"/v1/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", "", fmt.Errorf("token create: %w", err)
	}
	defer resp.Body.Close()
	var tr struct {
		Token string `json:"token"`
		CAPin string `json:"caPin"`
	}
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return "", "", fmt.Errorf("token create: %s %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		return "", "", err
	}
	return tr.Token, tr.CAPin, nil
}

// startWeftPair starts the server-side then the client-side sidecar and
// waits until both are ready and traffic flows to url.
func (e *env) startWeftPair(tag, url string) (*pair, error) {
	p := &pair{}
	common := []string{"--control-plane", ipServer + ":15010", "--issuer", ipServer + ":15012", "--namespace", "bench",
		"--admin", "127.0.0.1:15000", "--outbound", "127.0.0.1:15001", "--log-level", "warn", "--drain", "1s"}
	var envS, envC []string
	if e.profileDir != "" {
		envS = []string{"WEFTBENCH_PROFILE=" + filepath.Join(e.profileDir, "server")}
		envC = []string{"WEFTBENCH_PROFILE=" + filepath.Join(e.profileDir, "client")}
	}
	tok := e.tokens["echo"]
	args := append(append([]string{}, common...), "--workload", "echo-1", "--identity", "echo", "--label", "app=echo",
		"--address", ipServer, "--inbound", "15006:8080", "--inbound", "15007:8081/TCP", "--token", tok[0], "--ca-pin", tok[1])
	t0 := time.Now()
	var err error
	p.server, err = startIn(e.work, "weft-proxy-server-"+tag, nsServer, e.cfg.proxyCPU, envS, e.weftProxy, args...)
	if err != nil {
		return p, err
	}
	if err := waitHTTP(e.srvHTTP, "http://127.0.0.1:15000/ready", 30*time.Second, p.server); err != nil {
		return p, err
	}
	p.readyMS = append(p.readyMS, ms(time.Since(t0)))
	tok = e.tokens["client"]
	args = append(append([]string{}, common...), "--workload", "client-1", "--identity", "client", "--label", "app=client",
		"--address", ipClient, "--upstream", "echo.bench=127.0.0.1:9001", "--upstream", "echo-tcp.bench:9000=127.0.0.1:9004",
		"--token", tok[0], "--ca-pin", tok[1])
	t0 = time.Now()
	p.client, err = startIn(e.work, "weft-proxy-client-"+tag, nsClient, e.cfg.proxyCPU, envC, e.weftProxy, args...)
	if err != nil {
		return p, err
	}
	if err := waitHTTP(e.cliHTTP, "http://127.0.0.1:15000/ready", 30*time.Second, p.client); err != nil {
		return p, err
	}
	p.readyMS = append(p.readyMS, ms(time.Since(t0)))
	return p, waitHTTP(e.cliHTTP, url, 20*time.Second, p.client, p.server)
}

// ---- nginx ----

func (e *env) nginxConf(side string) string {
	dir := filepath.Join(e.work, "nginx-"+side)
	_ = os.MkdirAll(dir, 0o755)
	pki := filepath.Join(e.work, "pki")
	head := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
`, dir)
	var body string
	if side == "client" {
		body = fmt.Sprintf(`  upstream mesh { server %[1]s:15106; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:9002;
    location / {
      proxy_pass https://mesh;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate %[2]s/client.crt;
      proxy_ssl_certificate_key %[2]s/client.key;
      proxy_ssl_trusted_certificate %[2]s/ca.crt;
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      proxy_ssl_name server.bench;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse off;
    }
  }
}
`, ipServer, pki)
	} else {
		body = fmt.Sprintf(`  upstream app { server 127.0.0.1:8080; keepalive 64; keepalive_requests 1000000; }
  server {
    listen %[1]s:15106 ssl;
    ssl_certificate %[2]s/server.crt;
    ssl_certificate_key %[2]s/server.key;
    ssl_client_certificate %[2]s/ca.crt;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_protocols TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, ipServer, pki)
	}
	f := filepath.Join(dir, "nginx.conf")
	_ = os.WriteFile(f, []byte(head+body), 0o644)
	return f
}

func (e *env) startNginxPair(tag, url string) (*pair, error) {
	p := &pair{}
	var err error
	p.server, err = startIn(e.work, "nginx-server-"+tag, nsServer, e.cfg.proxyCPU, nil, e.cfg.nginx,
		"-e", "stderr", "-c", e.nginxConf("server"), "-g", "daemon off;")
	if err != nil {
		return p, err
	}
	p.client, err = startIn(e.work, "nginx-client-"+tag, nsClient, e.cfg.proxyCPU, nil, e.cfg.nginx,
		"-e", "stderr", "-c", e.nginxConf("client"), "-g", "daemon off;")
	if err != nil {
		return p, err
	}
	return p, waitHTTP(e.cliHTTP, url, 20*time.Second, p.client, p.server)
}

// ---- HAProxy ----

func (e *env) haproxyConf(side string) string {
	pki := filepath.Join(e.work, "pki")
	head := `global
  nbthread 1
  maxconn 4096
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
`
	var body string
	if side == "client" {
		body = fmt.Sprintf(`frontend in
  bind 127.0.0.1:9003
  default_backend mesh
backend mesh
  server s1 %[1]s:15206 ssl crt %[2]s/client.pem ca-file %[2]s/ca.crt verify required verifyhost server.bench no-ssl-reuse
`, ipServer, pki)
	} else {
		body = fmt.Sprintf(`frontend in
  bind %[1]s:15206 ssl crt %[2]s/server.pem ca-file %[2]s/ca.crt verify required no-tls-tickets
  default_backend app
backend app
  server a1 127.0.0.1:8080
`, ipServer, pki)
	}
	f := filepath.Join(e.work, "haproxy-"+side+".cfg")
	_ = os.WriteFile(f, []byte(head+body), 0o644)
	return f
}

func (e *env) startHAProxyPair(tag, url string) (*pair, error) {
	p := &pair{}
	var err error
	p.server, err = startIn(e.work, "haproxy-server-"+tag, nsServer, e.cfg.proxyCPU, nil, e.cfg.haproxy, "-db", "-f", e.haproxyConf("server"))
	if err != nil {
		return p, err
	}
	p.client, err = startIn(e.work, "haproxy-client-"+tag, nsClient, e.cfg.proxyCPU, nil, e.cfg.haproxy, "-db", "-f", e.haproxyConf("client"))
	if err != nil {
		return p, err
	}
	return p, waitHTTP(e.cliHTTP, url, 20*time.Second, p.client, p.server)
}

// paths returns every path of the benchmark, fixed-load ones first.
func (e *env) paths() []path {
	weftURL, tcpURL := "http://127.0.0.1:9001/", "http://127.0.0.1:9004/"
	nginxURL, haURL := "http://127.0.0.1:9002/", "http://127.0.0.1:9003/"
	direct := "http://" + ipServer + ":8080/"
	weft := func(u string) func(string) (*pair, error) {
		return func(tag string) (*pair, error) { return e.startWeftPair(tag, u) }
	}
	nginx := func(tag string) (*pair, error) { return e.startNginxPair(tag, nginxURL) }
	return []path{
		{name: "direct", title: "direct (no proxy) — the floor", url: direct},
		{name: "weft", title: "Weft pair, HTTP, mTLS", url: weftURL, start: weft(weftURL)},
		{name: "nginx", title: "nginx pair, mTLS", url: nginxURL, start: nginx},
		{name: "haproxy", title: "HAProxy pair, mTLS", url: haURL, start: func(tag string) (*pair, error) { return e.startHAProxyPair(tag, haURL) }},
		{name: "weft_tcp", title: "Weft pair, opaque TCP over mTLS", url: tcpURL, start: weft(tcpURL)},
		{name: "direct_max", title: "direct, max throughput", url: direct, max: true},
		{name: "weft_max", title: "Weft pair, max throughput", url: weftURL, max: true, start: weft(weftURL)},
		{name: "nginx_max", title: "nginx pair, max throughput", url: nginxURL, max: true, start: nginx},
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

var _ = context.Background
var _ = strings.TrimSpace
