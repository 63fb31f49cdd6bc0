package authz

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// checkPath is the gRPC method of envoy.service.auth.v3.Authorization.
const checkPath = "/envoy.service.auth.v3.Authorization/Check"

// maxCheckResponse bounds a CheckResponse.
const maxCheckResponse = 1 << 20

// clusterHostSuffix marks the synthetic host a cluster name is carried in
// to the dialer (the transport pools connections per host).
const clusterHostSuffix = ".weft-authz.invalid:80"

// NewExtAuthzClient returns an Options.ExtAuthz that sends each check as
// a gRPC unary call to envoy.service.auth.v3.Authorization/Check, HTTP/2
// without TLS (h2c), over connections dial opens to a cluster's endpoint.
// Connections are pooled per cluster and multiplexed. The returned
// function is safe for concurrent use and blocks until the authorizer
// answers or ctx ends. It returns an error when the authorizer cannot
// answer (transport failure, a non-OK gRPC status, an error_response);
// an OK CheckResponse status allows with ok_response.headers, any other
// denies with denied_response (status default 403).
func NewExtAuthzClient(dial func(ctx context.Context, cluster string) (net.Conn, error)) func(ctx context.Context, cluster string, req *Request) (Decision, error) {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	t := &http.Transport{
		Protocols:          &protocols,
		DisableCompression: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			h, ok := strings.CutSuffix(addr, clusterHostSuffix)
			if !ok {
				return nil, fmt.Errorf("authz: unexpected address %q", addr)
			}
			cluster, err := hex.DecodeString(h)
			if err != nil {
				return nil, fmt.Errorf("authz: unexpected address %q", addr)
			}
			return dial(ctx, string(cluster))
		},
	}
	client := &http.Client{Transport: t}
	return func(ctx context.Context, cluster string, req *Request) (Decision, error) {
		return checkCall(ctx, client, cluster, req)
	}
}

func checkCall(ctx context.Context, client *http.Client, cluster string, req *Request) (Decision, error) {
	msg := encodeCheckRequest(req)
	body := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:], uint32(len(msg)))
	body = append(body, msg...)
	u := "http://" + hex.EncodeToString([]byte(cluster)) + strings.TrimSuffix(clusterHostSuffix, ":80") + checkPath
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Decision{}, fmt.Errorf("authz: ext_authz: %w", err)
	}
	hr.Header.Set("Content-Type", "application/grpc")
	hr.Header.Set("Te", "trailers")
	if dl, ok := ctx.Deadline(); ok {
		if ms := max(1, int64(time.Until(dl)/time.Millisecond)); ms > 0 {
			hr.Header.Set("Grpc-Timeout", strconv.FormatInt(ms, 10)+"m")
		}
	}
	resp, err := client.Do(hr)
	if err != nil {
		return Decision{}, fmt.Errorf("authz: ext_authz: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Decision{}, fmt.Errorf("authz: ext_authz: HTTP status %s", resp.Status)
	}
	var hdr [5]byte
	var out []byte
	if _, err := io.ReadFull(resp.Body, hdr[:]); err == nil {
		if hdr[0] != 0 {
			return Decision{}, errors.New("authz: ext_authz: compressed response")
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > maxCheckResponse {
			return Decision{}, fmt.Errorf("authz: ext_authz: response of %d bytes", n)
		}
		out = make([]byte, n)
		if _, err := io.ReadFull(resp.Body, out); err != nil {
			return Decision{}, fmt.Errorf("authz: ext_authz: read response: %w", err)
		}
	} else if err != io.EOF {
		return Decision{}, fmt.Errorf("authz: ext_authz: read response: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCheckResponse))
	st := resp.Trailer.Get("Grpc-Status")
	if st == "" {
		st = resp.Header.Get("Grpc-Status")
	}
	if st != "0" {
		return Decision{}, fmt.Errorf("authz: ext_authz: gRPC status %q: %s", st, resp.Trailer.Get("Grpc-Message")+resp.Header.Get("Grpc-Message"))
	}
	if out == nil {
		return Decision{}, errors.New("authz: ext_authz: no response message")
	}
	d, err := decodeCheckResponse(out)
	if err != nil {
		return Decision{}, fmt.Errorf("authz: ext_authz: %w", err)
	}
	return d, nil
}

// encodeCheckRequest encodes an envoy.service.auth.v3.CheckRequest.
func encodeCheckRequest(r *Request) []byte {
	var attrs []byte
	attrs = appendMsg(attrs, 1, encodePeer(r.DirectIP, 0, r.PeerID, r.PeerCertificate))
	attrs = appendMsg(attrs, 2, encodePeer(r.DestIP, r.DestPort, r.DestID, ""))
	var h []byte // AttributeContext.HttpRequest
	h = appendStr(h, 1, r.ID)
	h = appendStr(h, 2, r.Method)
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	headers[":method"] = r.Method
	headers[":authority"] = r.Host
	path := r.Path
	if r.Query != "" {
		path += "?" + r.Query
	}
	headers[":path"] = path
	if r.Scheme != "" {
		headers[":scheme"] = r.Scheme
	}
	keys := make([]string, 0, len(headers))
	for k := range headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var e []byte
		e = appendStr(e, 1, k)
		e = appendStr(e, 2, headers[k])
		h = appendMsg(h, 3, e)
	}
	h = appendStr(h, 4, path)
	h = appendStr(h, 5, r.Host)
	h = appendStr(h, 6, r.Scheme)
	h = appendStr(h, 7, r.Query)
	if len(r.Body) > 0 {
		h = protowire.AppendTag(h, 9, protowire.VarintType)
		h = protowire.AppendVarint(h, uint64(len(r.Body)))
	}
	h = appendStr(h, 10, r.Protocol)
	h = appendStr(h, 11, string(r.Body))
	var rq []byte // AttributeContext.Request
	rq = appendMsg(rq, 2, h)
	attrs = appendMsg(attrs, 4, rq)
	if r.ServerName != "" {
		attrs = appendMsg(attrs, 12, appendStr(nil, 1, r.ServerName))
	}
	return appendMsg(nil, 1, attrs)
}

// encodePeer encodes an AttributeContext.Peer.
func encodePeer(ip netip.Addr, port uint32, principal, cert string) []byte {
	var p []byte
	if ip.IsValid() {
		var sa []byte // core.v3.SocketAddress
		sa = appendStr(sa, 2, ip.Unmap().String())
		if port != 0 {
			sa = protowire.AppendTag(sa, 3, protowire.VarintType)
			sa = protowire.AppendVarint(sa, uint64(port))
		}
		p = appendMsg(p, 1, appendMsg(nil, 1, sa))
	}
	p = appendStr(p, 4, principal)
	p = appendStr(p, 5, cert)
	return p
}

func appendStr(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMsg(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// fields calls fn for each field of a message.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, m []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var (
			v uint64
			m []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			m, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, m); err != nil {
			return err
		}
	}
	return nil
}

// decodeCheckResponse decodes an envoy.service.auth.v3.CheckResponse.
func decodeCheckResponse(b []byte) (Decision, error) {
	var (
		code         uint64
		denied, ok   []byte
		errorMessage bool
		msg          string
	)
	err := fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, m []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1: // status: google.rpc.Status
			return fields(m, func(num protowire.Number, typ protowire.Type, v uint64, m []byte) error {
				switch {
				case num == 1 && typ == protowire.VarintType:
					code = uint64(int32(v))
				case num == 2 && typ == protowire.BytesType:
					msg = string(m)
				}
				return nil
			})
		case 2:
			denied = append(denied, m...)
		case 3:
			ok = append(ok, m...)
		case 5:
			errorMessage = true
		}
		return nil
	})
	if err != nil {
		return Decision{}, err
	}
	if errorMessage && code != 0 {
		return Decision{}, fmt.Errorf("authorizer error (status %d)", code)
	}
	if code == 0 {
		d := Decision{Allowed: true}
		err := fields(ok, func(num protowire.Number, typ protowire.Type, _ uint64, m []byte) error {
			if num == 2 && typ == protowire.BytesType {
				return addHeaderOption(&d.Headers, m)
			}
			return nil
		})
		return d, err
	}
	d := Decision{Status: http.StatusForbidden, Reason: "ext_authz denied"}
	if msg != "" {
		d.Reason = "ext_authz denied: " + msg
	}
	err = fields(denied, func(num protowire.Number, typ protowire.Type, _ uint64, m []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1: // HttpStatus
			return fields(m, func(num protowire.Number, typ protowire.Type, v uint64, _ []byte) error {
				if num == 1 && typ == protowire.VarintType && v >= 200 && v <= 599 {
					d.Status = int(v)
				}
				return nil
			})
		case 2:
			return addHeaderOption(&d.DeniedHeaders, m)
		case 3:
			d.DeniedBody = string(m)
		}
		return nil
	})
	return d, err
}

// addHeaderOption adds a core.v3.HeaderValueOption's header to h.
func addHeaderOption(h *http.Header, b []byte) error {
	var key, value string
	var raw []byte
	err := fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, m []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return fields(m, func(num protowire.Number, typ protowire.Type, _ uint64, m []byte) error {
			if typ != protowire.BytesType {
				return nil
			}
			switch num {
			case 1:
				key = string(m)
			case 2:
				value = string(m)
			case 3:
				raw = m
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if raw != nil && value == "" {
		value = string(raw)
	}
	if key == "" || strings.HasPrefix(key, ":") || strings.ContainsAny(key, "\r\n\x00 :") || strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("invalid header %q from the authorizer", key)
	}
	if *h == nil {
		*h = http.Header{}
	}
	h.Add(key, value)
	return nil
}
