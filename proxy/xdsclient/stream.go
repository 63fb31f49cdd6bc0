package xdsclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// errStreamDone closes the request body when the stream is torn down.
var errStreamDone = errors.New("xdsclient: stream done")

// runStream opens one connection and one ADS stream on it and serves the
// stream until it fails or ctx is done. gotResponse reports whether the
// control plane sent at least one response.
func (c *Client) runStream(ctx context.Context) (gotResponse bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	conn, err := c.transport.NewClientConn(ctx, c.scheme, c.opts.Server)
	if err != nil {
		return false, fmt.Errorf("xdsclient: connect to %s: %w", c.opts.Server, err)
	}
	defer conn.Close()

	body, bodyWriter := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, body)
	if err != nil {
		return false, fmt.Errorf("xdsclient: %w", err)
	}
	req.ContentLength = -1
	req.Header = http.Header{
		"Content-Type": {"application/grpc"},
		"Te":           {"trailers"},
		"User-Agent":   {c.userAgent},
	}

	st := c.openStream()
	defer c.closeStream()
	c.log.Info("ADS stream opened", "server", c.opts.Server)

	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		bodyWriter.CloseWithError(c.sendLoop(ctx, st, bodyWriter))
	}()
	defer func() {
		cancel()
		body.CloseWithError(errStreamDone) // unblocks a sender stuck in Write
		<-senderDone
	}()

	resp, err := conn.RoundTrip(req)
	if err != nil {
		return false, fmt.Errorf("xdsclient: open stream: %w", err)
	}
	defer resp.Body.Close()
	if err := checkHeaders(resp); err != nil {
		return false, err
	}

	var hdr [5]byte
	for {
		msg, err := readMessage(resp.Body, &hdr, c.opts.MaxMessageSize)
		if err == io.EOF {
			return gotResponse, grpcStatus(resp)
		}
		if err != nil {
			return gotResponse, err
		}
		gotResponse = true
		if err := c.handleResponse(st, msg); err != nil {
			return gotResponse, err
		}
	}
}

// openStream publishes a new stream and queues a request for every
// subscribed type.
func (c *Client) openStream() *streamState {
	st := &streamState{wake: make(chan struct{}, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, typeURL := range c.order {
		ts := c.types[typeURL]
		ts.nonce = ""
		ts.requested = false
		ts.notBefore = time.Time{}
		st.enqueue(typeURL)
	}
	c.stream = st
	c.streams++
	c.lastConnected = time.Now()
	return st
}

func (c *Client) closeStream() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stream = nil
	for _, ts := range c.types {
		ts.nonce = ""
		ts.requested = false
	}
}

// sendLoop writes the requests queued on st to w until ctx is done or a
// write fails. It is the only writer of w.
func (c *Client) sendLoop(ctx context.Context, st *streamState, w io.Writer) error {
	timer := time.NewTimer(0)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-st.wake:
		case <-timer.C:
		}
		frames, next := c.takeRequests(st, time.Now())
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		if len(frames) == 0 {
			continue
		}
		if _, err := w.Write(frames); err != nil {
			return err
		}
	}
}

// takeRequests builds the gRPC frames of the requests queued on st from the
// current state of their types. Types held back by NACK pacing stay queued;
// next is when the earliest of them is due (zero if none).
func (c *Client) takeRequests(st *streamState, now time.Time) (frames []byte, next time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := st.pending[:0]
	for _, typeURL := range st.pending {
		ts := c.types[typeURL]
		if now.Before(ts.notBefore) {
			held = append(held, typeURL)
			if next.IsZero() || ts.notBefore.Before(next) {
				next = ts.notBefore
			}
			continue
		}
		if ts.names != nil && len(ts.names) == 0 && !ts.requested {
			// Subscribed to none and never asked on this stream: an empty
			// list would be read as a wildcard, so say nothing.
			continue
		}
		ts.requested = true
		r := request{
			version: ts.version,
			names:   ts.names,
			typeURL: typeURL,
			nonce:   ts.nonce,
		}
		if ts.nonce != "" {
			r.nackMessage = ts.nackErr
		}
		if !st.sentNode {
			r.node = c.node
			st.sentNode = true
		}
		frames = appendFrame(frames, r)
		c.log.Debug("sending discovery request", "type", typeURL, "version", r.version,
			"nonce", r.nonce, "names", len(r.names), "nack", r.nackMessage != "")
	}
	st.pending = held
	return frames, next
}

// appendFrame appends r as a length-prefixed gRPC message.
func appendFrame(b []byte, r request) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0) // uncompressed; length filled in below
	b = appendRequest(b, r)
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-5))
	return b
}

// handleResponse decodes one DiscoveryResponse, hands it to the Handler and
// queues the ACK or NACK. An error ends the stream.
func (c *Client) handleResponse(st *streamState, msg []byte) error {
	resp, err := decodeResponse(msg)
	if err != nil {
		return fmt.Errorf("xdsclient: %w", err)
	}
	log := c.log.With("type", resp.typeURL, "version", resp.version, "nonce", resp.nonce)

	c.mu.Lock()
	ts := c.types[resp.typeURL]
	c.mu.Unlock()
	if ts == nil {
		// As Envoy does: a response for a type nobody subscribed to is a
		// control plane bug; answering it would subscribe to the type.
		log.Warn("ignoring response for a type that is not subscribed")
		return nil
	}

	resources := make([][]byte, len(resp.resources))
	for i, r := range resp.resources {
		if r.typeURL != resp.typeURL {
			err = fmt.Errorf("xdsclient: resource %d has type %q, want %q", i, r.typeURL, resp.typeURL)
			break
		}
		resources[i] = r.value
	}
	if err == nil {
		err = c.opts.Handler.OnResources(resp.typeURL, resp.version, resources)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	ts.nonce = resp.nonce
	if err == nil {
		ts.version = resp.version
		ts.nackErr = ""
		ts.acks++
		ts.nacksInRow = 0
		ts.notBefore = time.Time{}
		log.Debug("ACK", "resources", len(resources))
	} else {
		ts.nackErr = err.Error()
		if ts.nackErr == "" {
			ts.nackErr = "xdsclient: resources rejected"
		}
		ts.nacks++
		ts.nacksInRow++
		if ts.nacksInRow > 1 {
			ts.notBefore = time.Now().Add(jitter(c.backoffStep(ts.nacksInRow - 2)))
		}
		log.Warn("NACK", "resources", len(resources), "err", err, "last_acked", ts.version)
	}
	st.enqueue(resp.typeURL)
	return nil
}

// backoffStep returns InitialBackoff doubled n times, capped at MaxBackoff.
func (c *Client) backoffStep(n int) time.Duration {
	d := c.opts.InitialBackoff
	for range n {
		if d >= c.opts.MaxBackoff {
			break
		}
		d *= 2
	}
	return min(d, c.opts.MaxBackoff)
}

// checkHeaders checks the response headers of the stream.
func checkHeaders(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK {
		if resp.Header.Get("Grpc-Status") != "" {
			if err := grpcStatus(resp); err != errStreamEnded {
				return err
			}
		}
		return fmt.Errorf("xdsclient: unexpected HTTP status %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		return fmt.Errorf("xdsclient: unexpected content-type %q", ct)
	}
	return nil
}

// readMessage reads one length-prefixed gRPC message. It returns io.EOF
// only if r ends cleanly before a message.
func readMessage(r io.Reader, hdr *[5]byte, maxSize int) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("xdsclient: read message: %w", err)
	}
	if hdr[0] != 0 {
		return nil, fmt.Errorf("xdsclient: message compressed (flag %d) but no compression was negotiated", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(maxSize) {
		return nil, fmt.Errorf("xdsclient: message of %d bytes exceeds the limit of %d", n, maxSize)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("xdsclient: read message: %w", err)
	}
	return msg, nil
}

// StatusError is the non-OK gRPC status a control plane ended the stream
// with; Status.LastError holds one when that is how the last stream ended.
// It is never modified after it is created.
type StatusError struct {
	Code    int    // google.rpc.Code
	Message string // grpc-message, percent-decoded
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("xdsclient: stream ended with status %s: %s", codeName(e.Code), e.Message)
}

// errStreamEnded is returned when the control plane ends the stream with
// status OK. The stream is long-lived, so this too leads to a reconnect.
var errStreamEnded = errors.New("xdsclient: stream ended by the server with status OK")

// grpcStatus reads grpc-status and grpc-message from the trailers, or from
// the headers of a trailers-only response, once the body is at EOF.
func grpcStatus(resp *http.Response) error {
	h := resp.Trailer
	if h.Get("Grpc-Status") == "" {
		h = resp.Header
	}
	s := h.Get("Grpc-Status")
	if s == "" {
		return errors.New("xdsclient: stream ended without grpc-status")
	}
	code, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("xdsclient: malformed grpc-status %q", s)
	}
	if code == 0 {
		return errStreamEnded
	}
	return &StatusError{Code: code, Message: percentDecode(h.Get("Grpc-Message"))}
}

// percentDecode undoes the percent-encoding of grpc-message. Malformed
// escapes are kept as they are, as the gRPC spec asks.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var codeNames = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
	"NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
	"FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
	"Internal", "Unavailable", "DataLoss", "Unauthenticated",
}

func codeName(code int) string {
	if code >= 0 && code < len(codeNames) {
		return codeNames[code]
	}
	return "Code(" + strconv.Itoa(code) + ")"
}
