package authzserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Defaults of Options.
const (
	DefaultDecisionTimeout = 100 * time.Millisecond
	DefaultWatchInterval   = 2 * time.Second
	DefaultMaxRequestBytes = 1 << 20
)

// Options configure a Server. Zero values take the defaults above.
type Options struct {
	// Policy lists the .rego files, or directories of .rego and data
	// (.json, .yaml) files, the policy is loaded from. Required.
	Policy []string
	// Query is the decision evaluated for every Check (DefaultQuery).
	Query string
	// DecisionTimeout bounds one evaluation; past it the Check answers
	// DEADLINE_EXCEEDED and the caller's failure mode decides.
	DecisionTimeout time.Duration
	// MaxRequestBytes bounds the encoded CheckRequest; a larger one is
	// denied without evaluation.
	MaxRequestBytes int
	// WatchInterval is how often Watch polls the policy files.
	WatchInterval time.Duration
	// RegoV0 parses modules with the pre-1.0 Rego syntax (OPA's
	// --v0-compatible), for policies not yet ported to Rego v1.
	RegoV0 bool
	// Logger receives reloads at INFO/ERROR, decisions and print() output at
	// DEBUG. Nil: slog.Default().
	Logger *slog.Logger
	// OnPolicy, if set, is called after every load attempt with whether a
	// good policy is serving (used to drive gRPC health). It must not block.
	OnPolicy func(loaded bool)
}

// Server answers envoy.service.auth.v3.Authorization/Check with a Rego
// policy. Check is safe for concurrent use and never waits for a reload:
// it evaluates the policy that was current when it started. Reload and
// Watch serialise among themselves.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	opts   Options
	log    *slog.Logger
	policy atomic.Pointer[Policy]
	stats  Stats

	mu      sync.Mutex // guards lastFP, lastErr
	lastFP  string     // fingerprint of the last load attempt
	lastErr error      // error of the last load attempt
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New checks the options and loads the policy once. A policy that fails
// to load does not fail New: the Server then denies every request, and
// Reload/Watch may load a fixed one later (LoadError tells what went wrong).
func New(opts Options) (*Server, error) {
	if len(opts.Policy) == 0 {
		return nil, errors.New("authz: no policy path")
	}
	if opts.Query == "" {
		opts.Query = DefaultQuery
	}
	if _, err := ast.ParseBody(opts.Query); err != nil {
		return nil, fmt.Errorf("authz: query %q: %w", opts.Query, err)
	}
	if opts.DecisionTimeout <= 0 {
		opts.DecisionTimeout = DefaultDecisionTimeout
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.WatchInterval <= 0 {
		opts.WatchInterval = DefaultWatchInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger}
	_ = s.Reload(context.Background()) // logged; the server denies until a policy loads
	return s, nil
}

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Policy returns the policy serving now, nil if none ever loaded.
func (s *Server) Policy() *Policy { return s.policy.Load() }

// LoadError returns the error of the last load attempt (nil if it loaded).
func (s *Server) LoadError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Reload loads and compiles the policy if its files changed since the last
// attempt (always, the first time). On success the new policy serves every
// Check that starts after it; on failure the last good policy keeps serving
// (or, if there never was one, every request stays denied) and the error is
// logged, counted and returned.
func (s *Server) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fp, err := fingerprint(s.opts.Policy)
	if err == nil && fp == s.lastFP {
		return s.lastErr
	}
	if err == nil {
		s.lastFP = fp
		co := compileOptions{paths: s.opts.Policy, query: s.opts.Query, regoVersion: s.regoVersion()}
		if s.log.Enabled(ctx, slog.LevelDebug) {
			co.print = printLogger{s.log} // print() costs time: only when it is seen
		}
		var p *Policy
		p, err = compile(context.WithoutCancel(ctx), co)
		if err == nil {
			s.policy.Store(p)
			s.lastErr = nil
			s.stats.ReloadOK.Add(1)
			s.log.Info("authz: policy loaded", "modules", strings.Join(p.modules, ","), "query", s.opts.Query)
			s.notify(true)
			return nil
		}
	} else {
		s.lastFP = "" // retry the next poll
	}
	s.lastErr = err
	s.stats.ReloadError.Add(1)
	if s.policy.Load() != nil {
		s.log.Error("authz: POLICY NOT LOADED, the last good policy keeps serving", "err", err)
	} else {
		s.log.Error("authz: POLICY NOT LOADED, no good policy: EVERY REQUEST IS DENIED", "err", err)
	}
	s.notify(s.policy.Load() != nil)
	return err
}

func (s *Server) notify(loaded bool) {
	if s.opts.OnPolicy != nil {
		s.opts.OnPolicy(loaded)
	}
}

func (s *Server) regoVersion() ast.RegoVersion {
	if s.opts.RegoV0 {
		return ast.RegoV0
	}
	return ast.RegoV1
}

// Watch polls the policy files every WatchInterval and reloads on change,
// until ctx ends.
func (s *Server) Watch(ctx context.Context) {
	t := time.NewTicker(s.opts.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.Reload(ctx) // logged by Reload
		}
	}
}

// Check answers one authorization request.
//
//   - allowed: status OK with an OkHttpResponse (headers the policy sets);
//   - denied, including an undefined decision, no good policy, a request
//     too large or with an unparseable path: status PERMISSION_DENIED with a
//     DeniedHttpResponse (403 unless the policy says otherwise, no body
//     unless the policy sets one);
//   - the evaluation failed or ran past DecisionTimeout, or the decision has
//     the wrong shape: a gRPC error (DEADLINE_EXCEEDED, INTERNAL), so the
//     caller's failure mode applies (closed unless configured otherwise).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	d, reason, err := s.decide(ctx, req)
	elapsed := time.Since(start)
	s.stats.observe(elapsed)
	h := req.GetAttributes().GetRequest().GetHttp()
	principal := req.GetAttributes().GetSource().GetPrincipal()
	if err != nil {
		s.stats.Error.Add(1)
		s.log.Warn("authz: decision failed", "method", h.GetMethod(), "path", h.GetPath(),
			"principal", principal, "err", err, "took", elapsed)
		return nil, err
	}
	if d.Allowed {
		s.stats.Allow.Add(1)
	} else {
		s.stats.Deny.Add(1)
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("authz: decision", "allowed", d.Allowed, "reason", reason, "method", h.GetMethod(),
			"host", h.GetHost(), "path", h.GetPath(), "principal", principal, "took", elapsed)
	}
	return d.response(), nil
}

// decide returns the decision, why (for the debug log), or a gRPC error.
func (s *Server) decide(ctx context.Context, req *authv3.CheckRequest) (decision, string, error) {
	p := s.policy.Load()
	if p == nil {
		return denyAll, "no policy loaded", nil
	}
	if n := proto.Size(req); n > s.opts.MaxRequestBytes {
		return denyAll, fmt.Sprintf("request of %d bytes exceeds %d", n, s.opts.MaxRequestBytes), nil
	}
	input, err := Input(req)
	if err != nil {
		return denyAll, err.Error(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.DecisionTimeout)
	defer cancel()
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		if topdown.IsCancel(err) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return decision{}, "", status.Errorf(codes.DeadlineExceeded, "authz: decision took longer than %v", s.opts.DecisionTimeout)
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return decision{}, "", status.Error(codes.Canceled, "authz: check cancelled")
		}
		return decision{}, "", status.Errorf(codes.Internal, "authz: evaluate %s: %v", p.queryStr, err)
	}
	d, err := decide(rs)
	if err != nil {
		return decision{}, "", status.Error(codes.Internal, err.Error())
	}
	if d.Undefined {
		return d, "decision undefined", nil
	}
	return d, "policy", nil
}

// printLogger sends Rego print() output to the debug log.
type printLogger struct{ log *slog.Logger }

func (l printLogger) Print(pc print.Context, msg string) error {
	loc := ""
	if pc.Location != nil {
		loc = pc.Location.String()
	}
	l.log.Debug("authz: rego print", "at", loc, "msg", msg)
	return nil
}
