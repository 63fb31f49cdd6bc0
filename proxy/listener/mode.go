package listener

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/snapshot"
)

// sniffTimeout bounds how long a new connection may stay silent before its
// first byte tells TLS from plaintext.
const sniffTimeout = 10 * time.Second

// acceptMode is how a listener takes connections; swapped atomically when
// a snapshot changes it, without rebinding.
type acceptMode struct {
	accept snapshot.Accept
	tls    *tls.Config
}

// modeListener hands the HTTP server connections as the current mode
// wants them: plaintext, or *tls.Conn (so the server negotiates ALPN and
// sees the peer's certificate). In STRICT and PERMISSIVE modes the first
// byte is read (off the accept loop) to tell a TLS handshake (0x16) from
// plaintext; plaintext on a STRICT port is refused and counted.
type modeListener struct {
	net.Listener
	mode   atomic.Pointer[acceptMode]
	reject func()
	// coalesce batches the writes of TLS connections (HTTP listeners,
	// see coalescedConn).
	coalesce bool
	ready    chan net.Conn
	done     chan struct{}
	once     sync.Once
	errMu    sync.Mutex
	err      error
}

func newModeListener(ln net.Listener, m *acceptMode, reject func(), coalesce bool) *modeListener {
	l := &modeListener{Listener: ln, reject: reject, coalesce: coalesce, ready: make(chan net.Conn), done: make(chan struct{})}
	l.mode.Store(m)
	go l.acceptLoop()
	return l
}

func (l *modeListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			l.errMu.Lock()
			l.err = err
			l.errMu.Unlock()
			l.once.Do(func() { close(l.done) })
			return
		}
		m := l.mode.Load()
		if m.accept == snapshot.AcceptPlain {
			l.deliver(c)
			continue
		}
		go l.sniff(c, m)
	}
}

func (l *modeListener) deliver(c net.Conn) {
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

// peekedConn replays the sniffed bytes.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// CloseWrite half-closes the underlying connection (opaque TCP needs it).
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (l *modeListener) sniff(c net.Conn, m *acceptMode) {
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, 512)
	first, err := br.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	pc := &peekedConn{Conn: c, r: br}
	if first[0] == 0x16 { // TLS handshake record
		if l.coalesce {
			l.deliver(tls.Server(newCoalescedConn(pc), m.tls))
			return
		}
		l.deliver(tls.Server(pc, m.tls))
		return
	}
	if m.accept == snapshot.AcceptMTLS {
		l.reject()
		c.Close()
		return
	}
	l.deliver(pc)
}

// Accept returns the next connection, ready for the HTTP server.
func (l *modeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		if l.err == nil {
			// Closed by Close before the accept loop saw it: never return
			// (nil, nil), which a server would take for a connection.
			return nil, net.ErrClosed
		}
		return nil, l.err
	}
}

func (l *modeListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.done) })
	return err
}
