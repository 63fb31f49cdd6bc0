// Package listener keeps the proxy's bound sockets across config changes.
// Listeners are the state that must outlive a snapshot: reconciling a new
// snapshot binds only listeners that are new (or moved), keeps the rest
// untouched (their handlers read the current snapshot on every request), and
// drains the ones that are gone. A Pool is safe for concurrent use.
package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/weftmesh/weft/proxy/snapshot"
)

// DrainTimeout bounds how long a removed listener waits for in-flight
// requests.
const DrainTimeout = 10 * time.Second

// IdleTimeout closes idle downstream keep-alive connections. It is above
// the 30 s idle timeout of the proxies' upstream pools, so a pooled
// proxy-to-proxy connection is always closed by the client side first.
const IdleTimeout = 60 * time.Second

// Pool holds the bound listeners by name.
type Pool struct {
	logger *slog.Logger
	opts   Options
	mu     sync.Mutex
	active map[string]*bound
	closed bool
}

type bound struct {
	name  string
	addr  string
	ln    *modeListener
	srv   *http.Server // nil for an opaque TCP listener
	tcp   bool
	conns sync.WaitGroup
}

// Options configure a Pool.
type Options struct {
	Logger *slog.Logger
	// TLS returns the server TLS config for mutual TLS listeners offering
	// the ALPN protocols. Required for STRICT and PERMISSIVE listeners.
	TLS func(alpn []string) *tls.Config
	// Reject counts a connection refused before TLS (plaintext on a STRICT
	// port).
	Reject func()
	// TCP serves one connection of an opaque TCP listener (by name).
	TCP func(listener string, c net.Conn)
}

// NewPool returns an empty pool.
func NewPool(opts Options) *Pool {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Reject == nil {
		opts.Reject = func() {}
	}
	return &Pool{logger: opts.Logger, opts: opts, active: map[string]*bound{}}
}

func (p *Pool) modeOf(l *snapshot.Listener) (*acceptMode, error) {
	m := &acceptMode{accept: l.Accept}
	if l.Accept != snapshot.AcceptPlain {
		if p.opts.TLS == nil {
			return nil, fmt.Errorf("listener %q: mutual TLS asked for but the proxy has no identity", l.Name)
		}
		m.tls = p.opts.TLS(l.ALPN)
	}
	return m, nil
}

// NewServer returns the HTTP server every listener uses: HTTP/1.1 and
// HTTP/2 with prior knowledge (h2c) on the same port. HTTP/2 requests are
// served on pooled goroutines (see workers).
func NewServer(h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           withWorkers(h),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		Protocols:         new(http.Protocols),
		ErrorLog:          nil,
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

// Reconcile makes the bound listeners those of the snapshot. handler
// returns the handler of a listener. If a new listener cannot be bound,
// nothing changes and the error says which (the caller NACKs).
func (p *Pool) Reconcile(snap *snapshot.Snapshot, handler func(*snapshot.Listener) http.Handler) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("listener: pool closed")
	}
	names := make([]string, 0, len(snap.Listeners))
	for name, l := range snap.Listeners {
		// An unbound listener (bind_to_port false) is only consulted by
		// local upstream ports.
		if !l.NoBind {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var added []*bound
	var moved []*bound
	type update struct {
		b    *bound
		mode *acceptMode
	}
	var updates []update
	for _, name := range names {
		l := snap.Listeners[name]
		if l.IsTCP() && p.opts.TCP == nil {
			closeAll(added)
			return fmt.Errorf("listener %q: TCP proxying is not configured in this proxy", name)
		}
		mode, err := p.modeOf(l)
		if err != nil {
			closeAll(added)
			return err
		}
		if cur := p.active[name]; cur != nil && cur.addr == l.Address && cur.tcp == l.IsTCP() {
			updates = append(updates, update{cur, mode})
			continue
		}
		var h http.Handler
		if !l.IsTCP() {
			h = handler(l)
		}
		b, err := p.bindMoving(name, l.Address, h, mode)
		if err != nil {
			closeAll(added)
			return err
		}
		if cur := p.active[name]; cur != nil {
			moved = append(moved, cur)
		}
		added = append(added, b)
	}
	for _, u := range updates {
		if old := u.b.ln.mode.Swap(u.mode); old.accept != u.mode.accept {
			p.logger.Info("listener accepts differently now", "listener", u.b.name, "accept", u.mode.accept.String())
		}
	}
	for _, b := range added {
		p.active[b.name] = b
		go b.serve(p.logger, p.opts.TCP)
		p.logger.Info("listener bound", "listener", b.name, "address", b.ln.Addr().String(), "accept", b.ln.mode.Load().accept.String())
	}
	for name, b := range p.active {
		if l, ok := snap.Listeners[name]; !ok || l.NoBind {
			delete(p.active, name)
			moved = append(moved, b)
		}
	}
	for _, b := range moved {
		p.logger.Info("listener draining", "listener", b.name, "address", b.addr)
		go b.drain()
	}
	return nil
}

// bindMoving binds addr; if a listener of another name holds the same
// address it cannot be taken over, which is an error.
func (p *Pool) bindMoving(name, addr string, h http.Handler, mode *acceptMode) (*bound, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listener %q: bind %s: %w", name, addr, err)
	}
	b := &bound{name: name, addr: addr, ln: newModeListener(ln, mode, p.opts.Reject, h != nil)}
	if h == nil {
		b.tcp = true
	} else {
		b.srv = NewServer(h)
	}
	return b, nil
}

func (b *bound) serve(logger *slog.Logger, tcp func(string, net.Conn)) {
	if b.tcp {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			go func() {
				defer b.conns.Done()
				tcp(b.name, c)
			}()
		}
	}
	if err := b.srv.Serve(b.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("listener stopped", "listener", b.name, "error", err)
	}
}

// shutdown stops accepting; HTTP waits for requests in flight until ctx
// ends, opaque TCP connections carry on until they close (they are
// long-lived, as in Envoy's drain).
func (b *bound) shutdown(ctx context.Context) {
	if b.tcp {
		b.ln.Close()
		return
	}
	if err := b.srv.Shutdown(ctx); err != nil {
		b.srv.Close()
	}
}

func (b *bound) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), DrainTimeout)
	defer cancel()
	b.shutdown(ctx)
}

func closeAll(bs []*bound) {
	for _, b := range bs {
		b.ln.Close()
	}
}

// Addrs returns the bound address of every listener, by name.
func (p *Pool) Addrs() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.active))
	for name, b := range p.active {
		out[name] = b.ln.Addr().String()
	}
	return out
}

// Shutdown stops accepting on every listener and waits (until ctx ends) for
// in-flight requests to finish.
func (p *Pool) Shutdown(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	all := make([]*bound, 0, len(p.active))
	for _, b := range p.active {
		all = append(all, b)
	}
	p.active = map[string]*bound{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, b := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.shutdown(ctx)
		}()
	}
	wg.Wait()
}
