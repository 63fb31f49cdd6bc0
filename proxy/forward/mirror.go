package forward

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/balancer"
)

// mirrorTimeout bounds a mirrored request.
const mirrorTimeout = 10 * time.Second

// mirror sends copies of a request to the route's mirror clusters, each
// with its probability, in the background: the copy's authority gets
// "-shadow", its answer is discarded, and the main request never waits for
// it. Copies beyond the Forwarder's bound in flight are dropped. body is
// the complete request body (nil when it has none).
func (f *Forwarder) mirror(x *exchange, out *http.Request, body []byte) {
	for _, m := range x.rt.Mirrors {
		if !draw(m.PerMillion) {
			continue
		}
		c := x.snap.Clusters[m.Cluster]
		if c == nil {
			continue
		}
		tr, scheme, err := f.transport(c, false)
		if err != nil {
			continue
		}
		select {
		case f.mirrors <- struct{}{}:
		default:
			f.opts.Logger.Debug("mirror dropped: too many in flight", "cluster", m.Cluster)
			continue
		}
		u := *out.URL
		u.Scheme = scheme
		req := &http.Request{
			Method:        out.Method,
			URL:           &u,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        out.Header.Clone(),
			Host:          shadowHost(out.Host),
			ContentLength: int64(len(body)),
		}
		if len(body) > 0 {
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		go func() {
			defer func() { <-f.mirrors }()
			ep := c.Picker.PickFor(balancer.Request{})
			if ep == nil {
				return
			}
			u.Host = ep.Address
			ctx, cancel := context.WithTimeout(context.Background(), mirrorTimeout)
			defer cancel()
			done := ep.Begin()
			resp, err := tr.RoundTrip(req.WithContext(ctx))
			if err != nil {
				done(resultOfError(kindOf(ctx, err)))
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			done(resultOfStatus(resp.StatusCode))
		}()
	}
}

// shadowHost appends "-shadow" to the host of an authority (before the
// port).
func shadowHost(authority string) string {
	if i := strings.LastIndexByte(authority, ':'); i > 0 && !strings.Contains(authority[i:], "]") {
		return authority[:i] + "-shadow" + authority[i:]
	}
	return authority + "-shadow"
}
