package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weftmesh/weft/controlplane/apiserver"
)

// Client talks to the control plane's resource API.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for the API at server (http://host:port or
// host:port).
func NewClient(server string) *Client {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &Client{base: strings.TrimRight(server, "/"), http: &http.Client{Timeout: 30 * time.Second}}
}

// APIError is an error answer from the control plane.
type APIError struct {
	Status  int
	Message string
	Details []string
}

func (e *APIError) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	return e.Message + ":\n  - " + strings.Join(e.Details, "\n  - ")
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &oe) || errors.As(err, &ne) {
			return fmt.Errorf("cannot reach the control plane at %s: %v\n(start one with `weft control`, or point at it with --server or WEFT_SERVER)", c.base, err)
		}
		return fmt.Errorf("cannot reach the control plane at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the control plane's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var eb apiserver.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			return &APIError{Status: resp.StatusCode, Message: eb.Error, Details: eb.Details}
		}
		return &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status)}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

// Apply creates or replaces an object.
func (c *Client) Apply(ctx context.Context, plural, namespace, name string, obj []byte) (*apiserver.ApplyResult, error) {
	var res apiserver.ApplyResult
	err := c.do(ctx, http.MethodPut, "/v1/"+plural+"/"+url.PathEscape(namespace)+"/"+url.PathEscape(name), obj, &res)
	return &res, err
}

// Get reads one object.
func (c *Client) Get(ctx context.Context, plural, namespace, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/"+plural+"/"+url.PathEscape(namespace)+"/"+url.PathEscape(name), nil, &raw)
	return raw, err
}

// List reads every object of a kind ("" namespace: all).
func (c *Client) List(ctx context.Context, plural, namespace string) ([]json.RawMessage, error) {
	path := "/v1/" + plural
	if namespace != "" {
		path += "?namespace=" + url.QueryEscape(namespace)
	}
	var l apiserver.List
	err := c.do(ctx, http.MethodGet, path, nil, &l)
	return l.Items, err
}

// Delete removes an object.
func (c *Client) Delete(ctx context.Context, plural, namespace, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/"+plural+"/"+url.PathEscape(namespace)+"/"+url.PathEscape(name), nil, nil)
}

// Raw GETs an API path and decodes the JSON answer into out.
func (c *Client) Raw(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}
