package forward

import (
	"errors"
	"io"
	"sync"
)

// replayBody keeps up to limit bytes of a request body as attempts read
// it, so a retry (or a mirror) can send it again. The body is not read
// ahead: each attempt streams it (a gRPC stream's messages flow as they
// come), and what it reads is recorded. Past the limit the recording is
// dropped and the body can no longer be replayed.
//
// Each attempt reads through its own reader; starting a new one retires
// the previous (an old transport may still be reading it), so at most one
// reader is current. A retired reader's read of the source still lands in
// the recording for the current one.
type replayBody struct {
	mu      sync.Mutex
	cond    sync.Cond
	src     io.ReadCloser
	limit   int
	buf     []byte
	n       int64 // bytes read from src
	eof     bool
	err     error // src's sticky error, other than EOF
	over    bool  // more than limit bytes: the recording is gone
	gen     int
	reading bool // a reader is inside src.Read
}

var (
	errAttemptOver = errors.New("forward: the attempt was retired")
	errBodyLost    = errors.New("forward: request body too large to replay")
)

func newReplayBody(src io.ReadCloser, limit int, contentLength int64) *replayBody {
	b := &replayBody{src: src, limit: limit}
	b.cond.L = &b.mu
	if contentLength > 0 && contentLength <= int64(limit) {
		b.buf = make([]byte, 0, contentLength)
	}
	return b
}

// reader returns the body for a new attempt, retiring the previous one.
func (b *replayBody) reader() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	return &replayReader{b: b, gen: b.gen}
}

// replayable reports whether a new attempt can send the whole body.
func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.over && b.err == nil
}

// stop retires every reader.
func (b *replayBody) stop() {
	b.mu.Lock()
	b.gen++
	b.cond.Broadcast()
	b.mu.Unlock()
}

// complete returns the whole body when it was read to its end within the
// limit. The bytes are not modified afterwards.
func (b *replayBody) complete() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.eof || b.over {
		return nil, false
	}
	return b.buf, true
}

type replayReader struct {
	b   *replayBody
	gen int
	off int64
}

func (r *replayReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b := r.b
	b.mu.Lock()
	for {
		if r.gen != b.gen {
			b.mu.Unlock()
			return 0, errAttemptOver
		}
		if r.off < b.n {
			if b.over {
				b.mu.Unlock()
				return 0, errBodyLost
			}
			n := copy(p, b.buf[r.off:])
			r.off += int64(n)
			b.mu.Unlock()
			return n, nil
		}
		if b.eof {
			b.mu.Unlock()
			return 0, io.EOF
		}
		if b.err != nil {
			err := b.err
			b.mu.Unlock()
			return 0, err
		}
		if !b.reading {
			break
		}
		b.cond.Wait()
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.src.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	b.cond.Broadcast()
	if n > 0 {
		if !b.over {
			if len(b.buf)+n > b.limit {
				b.over, b.buf = true, nil
			} else {
				b.buf = append(b.buf, p[:n]...)
			}
		}
		b.n += int64(n)
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.err = err
	}
	if r.gen != b.gen {
		return 0, errAttemptOver
	}
	r.off += int64(n)
	return n, err
}

// Close does not close the source: the next attempt may need it.
func (r *replayReader) Close() error { return nil }
