package listener

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// coalescedConn batches the writes of an HTTP connection into fewer
// syscalls. Go's HTTP/2 server writes a response's HEADERS and DATA
// frames in two flushes, each from its own goroutine hand-off: under TLS
// that is two records and two write syscalls per response, and the write
// syscalls were a third of the inbound proxy's CPU. Write queues the bytes
// and returns; a writer goroutine yields once (letting the goroutines that
// are ready to run, such as the handler about to send the DATA frame, add
// theirs) and then writes everything queued in one syscall. Nothing waits
// on a timer: the write happens as soon as the scheduler has nothing else
// ready, so the added latency is the time the proxy is busy anyway.
//
// Backpressure is kept: Write blocks while maxQueued bytes are waiting. A
// write error is returned by the next Write (and Close). Close and
// CloseWrite send what is queued first (for at most closeFlushTimeout).
type coalescedConn struct {
	net.Conn
	mu      sync.Mutex
	cond    sync.Cond
	queued  []byte
	spare   []byte
	err     error
	writing bool          // a writer goroutine is scheduled or writing
	idle    chan struct{} // closed when writing turns false; nil when not writing
}

const (
	maxQueued         = 64 << 10
	closeFlushTimeout = 5 * time.Second
)

func newCoalescedConn(c net.Conn) *coalescedConn {
	cc := &coalescedConn{Conn: c}
	cc.cond.L = &cc.mu
	return cc
}

func (c *coalescedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && len(c.queued) >= maxQueued {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.queued = append(c.queued, p...)
	if !c.writing {
		c.writing = true
		c.idle = make(chan struct{})
		go c.writeQueued()
	}
	return len(p), nil
}

func (c *coalescedConn) writeQueued() {
	runtime.Gosched()
	c.mu.Lock()
	for len(c.queued) > 0 && c.err == nil {
		buf := c.queued
		c.queued = c.spare[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(buf)
		c.mu.Lock()
		if cap(buf) <= maxQueued {
			c.spare = buf[:0]
		}
		if err != nil {
			c.err = err
			c.queued = nil
		}
		c.cond.Broadcast()
	}
	c.writing = false
	close(c.idle)
	c.idle = nil
	c.cond.Broadcast()
	c.mu.Unlock()
}

// drain waits until what is queued is written (or the timeout passes).
func (c *coalescedConn) drain() {
	c.mu.Lock()
	idle := c.idle
	c.mu.Unlock()
	if idle == nil {
		return
	}
	t := time.NewTimer(closeFlushTimeout)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

func (c *coalescedConn) Close() error {
	c.drain()
	return c.Conn.Close()
}

// CloseWrite half-closes the connection after what is queued.
func (c *coalescedConn) CloseWrite() error {
	c.drain()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
