package listener

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTP/2 server runs every stream's handler on a new goroutine. A new
// goroutine starts with the minimum stack and grows it (copying it each
// time it doubles) through the forwarder, ReverseProxy and the upstream
// transport, on every request: 12 % of the inbound proxy's CPU in the
// benchmark profile. HTTP/1.1 does not have the problem (one goroutine per
// connection keeps its grown stack).
//
// workers runs HTTP/2 handlers on long-lived goroutines instead, which
// keep their grown stacks between requests. The stream's goroutine hands
// the request over and waits: the ResponseWriter is used by one goroutine
// at a time, and the handler's end (or panic) is the stream's end, as
// before. Workers beyond maxIdleWorkers exit when they finish; idle ones
// exit after workerIdle.
type workers struct {
	h     http.Handler
	tasks chan *task
	idle  atomic.Int32 // workers waiting for a task
}

const (
	maxIdleWorkers = 64
	workerIdle     = 30 * time.Second
)

type task struct {
	w    http.ResponseWriter
	r    *http.Request
	done chan any // the handler's panic value, or nil
}

var tasks = sync.Pool{New: func() any { return &task{done: make(chan any, 1)} }}

// withWorkers wraps h so that HTTP/2 requests are served on pooled
// goroutines.
func withWorkers(h http.Handler) http.Handler {
	return &workers{h: h, tasks: make(chan *task)}
}

// panicked carries a handler's panic to the stream's goroutine.
type panicked struct {
	v     any
	stack []byte
}

func (p *panicked) Error() string { return fmt.Sprintf("%v\n%s", p.v, p.stack) }

func (ws *workers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		ws.h.ServeHTTP(w, r)
		return
	}
	t := tasks.Get().(*task)
	t.w, t.r = w, r
	select {
	case ws.tasks <- t:
	default:
		go ws.work(t)
	}
	p := <-t.done
	t.w, t.r = nil, nil
	tasks.Put(t)
	if p != nil {
		if p == http.ErrAbortHandler {
			panic(p)
		}
		panic(p.(*panicked))
	}
}

func (ws *workers) work(t *task) {
	timer := time.NewTimer(workerIdle)
	defer timer.Stop()
	for {
		t.done <- ws.run(t)
		if ws.idle.Add(1) > maxIdleWorkers {
			ws.idle.Add(-1)
			return
		}
		timer.Reset(workerIdle)
		select {
		case t = <-ws.tasks:
			ws.idle.Add(-1)
		case <-timer.C:
			ws.idle.Add(-1)
			return
		}
	}
}

func (ws *workers) run(t *task) (p any) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				p = v
				return
			}
			p = &panicked{v: v, stack: debug.Stack()}
		}
	}()
	ws.h.ServeHTTP(t.w, t.r)
	return nil
}
