// Package supervisor runs the application beside the proxy: it starts the
// app once the proxy is ready, forwards signals to it, and reports its exit
// code, so `weft run -- app` behaves like the app itself to whatever starts
// it (a shell, systemd, a container runtime).
//
// The app gets its own process group (so a terminal's Ctrl-C reaches it once,
// through the proxy, not twice) and dies with the proxy (Pdeathsig) if the
// proxy is killed outright.
package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Options describe the app.
type Options struct {
	Args []string
	Env  []string
	// StopTimeout is how long the app has to exit after a forwarded
	// SIGINT/SIGTERM before it is killed.
	StopTimeout time.Duration
	Logger      *slog.Logger
}

// App is a started application. Methods are safe for concurrent use.
type App struct {
	opts Options
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts the app.
func Start(opts Options) (*App, error) {
	if len(opts.Args) == 0 {
		return nil, errors.New("supervisor: no command")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 30 * time.Second
	}
	path, err := exec.LookPath(opts.Args[0])
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	a := &App{opts: opts, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits:
		// keep this goroutine on its thread until the child is gone.
		runtime.LockOSThread()
		cmd := exec.Command(path, opts.Args[1:]...)
		cmd.Env = opts.Env
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("supervisor: start %s: %w", opts.Args[0], err)
			close(a.done)
			return
		}
		a.cmd = cmd
		started <- nil
		a.err = cmd.Wait()
		close(a.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	opts.Logger.Info("app started", "command", opts.Args[0], "pid", a.cmd.Process.Pid)
	return a, nil
}

// Done is closed when the app has exited.
func (a *App) Done() <-chan struct{} { return a.done }

// ExitCode returns the app's exit code once Done is closed: its own code,
// or 128+signal when a signal ended it.
func (a *App) ExitCode() int {
	<-a.done
	if a.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(a.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}

// Signal forwards a signal to the app. For SIGINT and SIGTERM it also arms
// the stop timeout, after which the app is killed.
func (a *App) Signal(sig os.Signal) {
	select {
	case <-a.done:
		return
	default:
	}
	a.opts.Logger.Info("forwarding signal to app", "signal", sig.String())
	_ = a.cmd.Process.Signal(sig)
	if sig == syscall.SIGINT || sig == syscall.SIGTERM {
		go func() {
			select {
			case <-a.done:
			case <-time.After(a.opts.StopTimeout):
				a.opts.Logger.Warn("app did not exit in time; killing it", "timeout", a.opts.StopTimeout)
				_ = a.cmd.Process.Kill()
			}
		}()
	}
}
