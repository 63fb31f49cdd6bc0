package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var weftBin, proxyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weft-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-race", "-o", dir+"/", "./cmd/weft", "./cmd/weft-proxy")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.Exit(1)
	}
	weftBin, proxyBin = filepath.Join(dir, "weft"), filepath.Join(dir, "weft-proxy")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port free right now. Ports
// come from below the kernel's ephemeral range (32768+), so an outgoing
// connection cannot take one between now and the moment a proxy binds it.
func freeAddr(t *testing.T) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsUsed[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		portsUsed[port] = true
		return ln.Addr().String()
	}
	t.Fatal("no free port in 20000-32000")
	return ""
}

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

func portOf(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// process is a started binary whose output is kept for failure reports.
type process struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

type syncWriter struct{ p *process }

func (w syncWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func start(t *testing.T, name string, bin string, args ...string) *process {
	t.Helper()
	p := &process{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = syncWriter{p}, syncWriter{p}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM, 10*time.Second)
		if t.Failed() {
			t.Logf("---- output of %s ----\n%s", name, p.output())
		}
	})
	return p
}

// stop signals the process group and waits, killing it after timeout.
func (p *process) stop(sig syscall.Signal, timeout time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *process) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// controlPlane is a running `weft control`.
type controlPlane struct {
	*process
	api, xds, issuer, dataDir string
}

// cpAddrs are a control plane's three addresses, kept across restarts.
type cpAddrs struct{ xds, api, issuer string }

func newAddrs(t *testing.T) cpAddrs { return cpAddrs{freeAddr(t), freeAddr(t), freeAddr(t)} }

func startControlPlane(t *testing.T, dataDir string, a cpAddrs, extra ...string) *controlPlane {
	t.Helper()
	args := append([]string{"control", "--data-dir", dataDir, "--xds-addr", a.xds, "--api-addr", a.api,
		"--issuer-addr", a.issuer, "--registration-grace", "3s", "--log-level", "debug"}, extra...)
	p := start(t, "weft control", weftBin, args...)
	cp := &controlPlane{process: p, api: "http://" + a.api, xds: a.xds, issuer: a.issuer, dataDir: dataDir}
	waitOK(t, cp.api+"/healthz", 20*time.Second)
	return cp
}

func newControlPlane(t *testing.T, extra ...string) *controlPlane {
	return startControlPlane(t, t.TempDir(), newAddrs(t), extra...)
}

// joinArgs creates a join token for namespace/identity and returns the
// proxy flags that use it.
func (cp *controlPlane) joinArgs(t *testing.T, namespace, identity string) []string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"namespace": namespace, "identity": identity, "ttl": "1h"})
	resp, err := http.Post(cp.api+"/v1/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		Token string `json:"token"`
		CAPin string `json:"caPin"`
	}
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("token create: %s %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	return []string{"--token", tr.Token, "--ca-pin", tr.CAPin, "--issuer", cp.issuer, "--identity", identity}
}

// weft runs the CLI against the control plane and returns its output.
func (cp *controlPlane) weft(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(weftBin, append([]string{"--server", cp.api}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (cp *controlPlane) apply(t *testing.T, yaml string) {
	t.Helper()
	out, err := cp.weft(t, yaml, "apply", "-f", "-")
	if err != nil {
		t.Fatalf("weft apply: %v\n%s", err, out)
	}
}

// sidecar is a running weft-proxy.
type sidecar struct {
	*process
	admin, outbound string
	inboundPort     string
	upstreams       map[string]string
}

type sidecarOpts struct {
	workload, namespace string
	identity            string // default: the workload name
	labels              []string
	appPort             string // "" for none
	appProtocol         string
	upstreams           []string // hosts
	app                 []string // command to supervise
	extra               []string
}

func startSidecar(t *testing.T, cp *controlPlane, o sidecarOpts) *sidecar {
	t.Helper()
	s := &sidecar{admin: freeAddr(t), outbound: freeAddr(t), upstreams: map[string]string{}}
	args := []string{"--control-plane", cp.xds, "--workload", o.workload, "--namespace", o.namespace,
		"--address", "127.0.0.1", "--admin", s.admin, "--outbound", s.outbound, "--log-level", "debug"}
	for _, l := range o.labels {
		args = append(args, "--label", l)
	}
	if o.appPort != "" {
		s.inboundPort = portOf(t, freeAddr(t))
		in := s.inboundPort + ":" + o.appPort
		if o.appProtocol != "" {
			in += "/" + o.appProtocol
		}
		args = append(args, "--inbound", in)
	}
	for _, u := range o.upstreams {
		addr := freeAddr(t)
		s.upstreams[u] = addr
		args = append(args, "--upstream", u+"="+addr)
	}
	ident := o.identity
	if ident == "" {
		ident = o.workload
	}
	args = append(args, cp.joinArgs(t, o.namespace, ident)...)
	args = append(args, o.extra...)
	if len(o.app) > 0 {
		args = append(append(args, "--"), o.app...)
	}
	s.process = start(t, "weft-proxy "+o.workload, proxyBin, args...)
	waitOK(t, "http://"+s.admin+"/ready", 30*time.Second)
	return s
}

func waitOK(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = resp.Status + ": " + string(b)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not OK after %s: %s", url, timeout, last)
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("condition not met after %s: %v", timeout, err)
}

// backend is an HTTP app that answers with its name.
type backend struct {
	addr string
	srv  *http.Server
	hits sync.Map
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String()}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-backend", name)
		fmt.Fprintf(w, "%s %s %s host=%s", name, r.Method, r.URL.Path, r.Host)
	})}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *backend) port(t *testing.T) string { return portOf(t, b.addr) }

// get sends a GET and returns status, x-backend header and body.
func get(c *http.Client, url string, host string) (int, string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("x-backend"), string(b), err
}
