package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
)

// The two "hosts": the client namespace runs the load generator and the
// client-side proxy, the server namespace the app, the server-side proxy and
// the control plane. A veth pair joins them.
const (
	nsClient = "weftbench-c"
	nsServer = "weftbench-s"
	ipClient = "10.77.0.1"
	ipServer = "10.77.0.2"
)

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNetns creates both namespaces and the veth pair, removing leftovers
// of an earlier run first.
func setupNetns() error {
	teardownNetns()
	steps := [][]string{
		{"netns", "add", nsClient},
		{"netns", "add", nsServer},
		{"link", "add", "wbc0", "type", "veth", "peer", "name", "wbs0"},
		{"link", "set", "wbc0", "netns", nsClient},
		{"link", "set", "wbs0", "netns", nsServer},
		{"-n", nsClient, "addr", "add", ipClient + "/24", "dev", "wbc0"},
		{"-n", nsServer, "addr", "add", ipServer + "/24", "dev", "wbs0"},
		{"-n", nsClient, "link", "set", "lo", "up"},
		{"-n", nsServer, "link", "set", "lo", "up"},
		{"-n", nsClient, "link", "set", "wbc0", "up"},
		{"-n", nsServer, "link", "set", "wbs0", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			teardownNetns()
			return err
		}
	}
	return nil
}

// teardownNetns deletes both namespaces (and with them the veth pair).
func teardownNetns() {
	for _, ns := range []string{nsClient, nsServer} {
		if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	}
}

// nsDialer dials from inside a network namespace: one goroutine, locked to
// an OS thread that has joined the namespace, creates every socket (a
// socket stays in the namespace it was created in).
type nsDialer struct {
	reqs chan dialReq
}

type dialReq struct {
	ctx           context.Context
	network, addr string
	reply         chan dialResp
}

type dialResp struct {
	c   net.Conn
	err error
}

func newNSDialer(ns string) (*nsDialer, error) {
	d := &nsDialer{reqs: make(chan dialReq)}
	ready := make(chan error, 1)
	go func() {
		// The thread never returns to the root namespace: it stays locked
		// and dies with the goroutine (never, here).
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ready <- err
			return
		}
		const sysSetns = 308 // amd64
		_, _, errno := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0)
		f.Close()
		if errno != 0 {
			ready <- fmt.Errorf("setns %s: %v", ns, errno)
			return
		}
		ready <- nil
		for r := range d.reqs {
			var dl net.Dialer
			c, err := dl.DialContext(r.ctx, r.network, r.addr)
			r.reply <- dialResp{c, err}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return d, nil
}

// DialContext has net.Dialer's signature.
func (d *nsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	r := dialReq{ctx: ctx, network: network, addr: addr, reply: make(chan dialResp, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp := <-r.reply
	return resp.c, resp.err
}
