package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// localError is an answer the proxy makes itself: an HTTP status, the
// reason in x-weft-error, and for gRPC requests the grpc-status (-1:
// mapped from the HTTP status).
type localError struct {
	code   int
	reason string
	grpc   int
	flag   flag // the response flag, for answers not shared below
}

func (e *localError) Error() string { return e.reason }

var (
	errOverflow      = &localError{http.StatusServiceUnavailable, "overflow", -1, 0}
	errTimeout       = &localError{http.StatusGatewayTimeout, "request timeout", grpcDeadlineExceeded, 0}
	errPerTryTimeout = &localError{http.StatusGatewayTimeout, "upstream per-try timeout", grpcDeadlineExceeded, 0}
	errClientGone    = &localError{499, "client closed request", grpcCancelled, 0}
	errConnect       = &localError{http.StatusServiceUnavailable, "upstream connect error", -1, 0}
	errUpstream      = &localError{http.StatusBadGateway, "upstream error", -1, 0}
)

// gRPC status codes the proxy answers with.
const (
	grpcCancelled        = 1
	grpcUnknown          = 2
	grpcDeadlineExceeded = 4
	grpcPermissionDenied = 7
	grpcUnimplemented    = 12
	grpcInternal         = 13
	grpcUnavailable      = 14
	grpcUnauthenticated  = 16
)

// grpcFromHTTP maps an HTTP status to a gRPC status as Envoy does for its
// local replies.
func grpcFromHTTP(code int) int {
	switch code {
	case 400:
		return grpcInternal
	case 401:
		return grpcUnauthenticated
	case 403:
		return grpcPermissionDenied
	case 404:
		return grpcUnimplemented
	case 429, 502, 503, 504:
		return grpcUnavailable
	}
	return grpcUnknown
}

// errKind is how an upstream attempt failed without an answer.
type errKind int

const (
	kindOther     errKind = iota // reset, EOF before the headers, protocol error
	kindConnect                  // no connection: dial or TLS handshake failed
	kindRefused                  // HTTP/2 REFUSED_STREAM
	kindTimeout                  // the route timeout (or a per-try timeout) fired
	kindCancelled                // the client went away
)

func kindOf(ctx context.Context, err error) errKind {
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			return kindTimeout
		}
		return kindCancelled
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return kindTimeout
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return kindConnect
	}
	var cv *tls.CertificateVerificationError
	var ae tls.AlertError
	var rh tls.RecordHeaderError
	if errors.As(err, &cv) || errors.As(err, &ae) || errors.As(err, &rh) || strings.Contains(err.Error(), "tls: ") {
		return kindConnect
	}
	if strings.Contains(err.Error(), "REFUSED_STREAM") {
		return kindRefused
	}
	return kindOther
}

// classifyError turns an attempt's error into the answer; ctx is the
// request's (route timeout and client), perTry tells a per-try timeout.
func classifyError(ctx context.Context, err error, perTry bool) *localError {
	var le *localError
	if errors.As(err, &le) {
		return le
	}
	switch kindOf(ctx, err) {
	case kindTimeout:
		if perTry {
			return errPerTryTimeout
		}
		return errTimeout
	case kindCancelled:
		return errClientGone
	case kindConnect:
		return errConnect
	}
	return errUpstream
}

// reply writes a local answer: for gRPC requests a trailers-only gRPC
// answer, else the status with a short text body. grpcCode -1 maps the
// HTTP status.
func reply(w http.ResponseWriter, grpc bool, code int, reason string, grpcCode int) {
	if grpc {
		if grpcCode < 0 {
			grpcCode = grpcFromHTTP(code)
		}
		writeGRPC(w, code, grpcCode, reason, reason)
		return
	}
	h := w.Header()
	h.Set("x-weft-error", reason)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, "weft: "+reason+"\n")
}

// writeGRPC writes a trailers-only gRPC answer. httpCode is what the
// edge statistics and metrics record.
func writeGRPC(w http.ResponseWriter, httpCode, grpcCode int, message, reason string) {
	if sw, ok := w.(*statusWriter); ok && sw.code == 0 {
		sw.code = httpCode
	}
	h := w.Header()
	h.Set("x-weft-error", reason)
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(grpcCode))
	h.Set("Grpc-Message", url.PathEscape(message))
	w.WriteHeader(http.StatusOK)
}
