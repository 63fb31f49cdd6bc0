package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunSupervisesApp starts an app through `weft run`, which hands over
// to weft-proxy: the app starts only once the proxy is ready, sees its
// sidecar's addresses in the environment, and its exit code is weft run's.
func TestRunSupervisesApp(t *testing.T) {
	cp := newControlPlane(t)
	admin, outbound, up := freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{"run", "--control-plane", cp.xds, "--workload", "job-1", "--namespace", "batch",
		"--admin", admin, "--outbound", outbound, "--upstream", "reports.batch=" + up}
	args = append(args, cp.joinArgs(t, "batch", "job")...)
	cmd := exec.Command(weftBin, append(args, "--",
		"sh", "-c", `echo "outbound=$WEFT_OUTBOUND upstream=$WEFT_UPSTREAM_REPORTS_BATCH admin=$WEFT_ADMIN token=$WEFT_TOKEN."; exit 7`)...)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 7 {
		t.Fatalf("weft run exit: %v, want code 7\n%s", err, out)
	}
	want := fmt.Sprintf("outbound=http://%s upstream=%s admin=%s token=.", outbound, up, admin)
	if !strings.Contains(string(out), want) {
		t.Fatalf("app did not see its sidecar's addresses; want %q in:\n%s", want, out)
	}
	if !strings.Contains(string(out), "proxy ready") {
		t.Fatalf("the app started before the proxy was ready:\n%s", out)
	}
}

// TestRunForwardsSignals: SIGTERM to weft run reaches the app, whose exit
// code comes back.
func TestRunForwardsSignals(t *testing.T) {
	cp := newControlPlane(t)
	dir := t.TempDir()
	args := append([]string{"run", "--control-plane", cp.xds, "--workload", "svc-1", "--namespace", "batch",
		"--admin", freeAddr(t), "--outbound", freeAddr(t)}, cp.joinArgs(t, "batch", "svc")...)
	p := start(t, "weft run", weftBin, append(args, "--",
		"sh", "-c", `trap 'echo got TERM; exit 42' TERM; touch `+dir+`/started; while true; do sleep 0.05; done`)...)
	eventually(t, 30*time.Second, func() error {
		if _, err := exec.Command("test", "-f", dir+"/started").CombinedOutput(); err != nil {
			return fmt.Errorf("app not started")
		}
		return nil
	})
	// Signal only the proxy's pid (not its group): the proxy must forward.
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("weft run did not exit after SIGTERM:\n%s", p.output())
	}
	if code := p.exitCode(); code != 42 {
		t.Fatalf("exit code %d, want the app's 42:\n%s", code, p.output())
	}
	if !strings.Contains(p.output(), "got TERM") {
		t.Fatalf("the app did not get SIGTERM:\n%s", p.output())
	}
}

// TestProxyWithoutControlPlane: a proxy that cannot reach the control plane
// says so, and gives up after --ready-timeout without starting the app.
func TestProxyWithoutControlPlane(t *testing.T) {
	dead := freeAddr(t)
	cmd := exec.Command(proxyBin, "--control-plane", dead, "--workload", "x-1", "--namespace", "batch",
		"--token", "weft1.abcdefgh.0123456789abcdefghijklmnopqrstuv", "--ca-pin", "sha256:"+strings.Repeat("ab", 32),
		"--admin", freeAddr(t), "--outbound", freeAddr(t), "--ready-timeout", "6s", "--", "sh", "-c", "echo APP-STARTED")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want 1\n%s", err, out)
	}
	s := string(out)
	if strings.Contains(s, "APP-STARTED") {
		t.Fatalf("the app started without config:\n%s", s)
	}
	if !strings.Contains(s, "still waiting for configuration") || !strings.Contains(s, "giving up") {
		t.Fatalf("no clear message about the control plane:\n%s", s)
	}
}

// TestProxyFlagErrors: bad flags are refused with a message naming them.
func TestProxyFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--namespace", "x"}, "--workload is required"},
		{[]string{"--workload", "a", "--inbound", "15006"}, "want PORT:APP_PORT"},
		{[]string{"--workload", "a", "--inbound", "1:2/SMTP"}, "protocol must be"},
		{[]string{"--workload", "a", "--upstream", "catalog"}, "want HOST[:PORT]=LISTEN_ADDR"},
		{[]string{"--workload", "a", "--address", "not-an-ip"}, "not an IP address"},
	} {
		out, err := exec.Command(proxyBin, tc.args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("weft-proxy %v: err=%v, want exit 2 and %q:\n%s", tc.args, err, tc.want, out)
		}
	}
}
