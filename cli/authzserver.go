package cli

import (
	"fmt"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/controlplane/authzserver"
)

// newAuthzServerCmd is `weft authz-server`: an Envoy ext_authz server that
// decides with Rego policies, for CUSTOM authorization.
func newAuthzServerCmd(g *globals) *cobra.Command {
	var (
		opts      authzserver.RunOptions
		logLevel  string
		logFormat string
	)
	cmd := &cobra.Command{
		Use:   "authz-server --policy DIR_OR_FILE",
		Short: "Run an external authorizer (Envoy ext_authz over gRPC) that decides with Rego",
		Long: `Serve envoy.service.auth.v3.Authorization/Check, deciding every request with a
Rego policy (Open Policy Agent). A CUSTOM AuthorizationPolicy points sidecars at it;
Envoy's ext_authz filter can use it too. The input document is the one OPA's Envoy
plugin builds (input.attributes.request.http.*, input.parsed_path, input.parsed_query),
plus input.source.spiffe_id: the caller's identity, as verified by the sidecar.

The policy is compiled once per change. With --watch, files are polled every 2 s;
a policy that fails to compile keeps the last good one serving (and is logged as an
error); with no good policy at all, every request is denied. An evaluation that errs
or outlasts --decision-timeout answers a gRPC error, so the caller's failure mode
(closed by default) decides. See docs/authz-server.md.`,
		Example: `  weft authz-server --policy policies/ --watch
  weft authz-server --policy authz.rego --query data.weft.authz.response --decision-timeout 50ms
  weft authz-server --listen 0.0.0.0:9191 --policy policies/ \
    --tls-cert server.pem --tls-key server-key.pem --client-ca mesh-root.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(opts.Policy) == 0 {
				return fmt.Errorf("--policy: give a .rego file or a directory of them")
			}
			logger, err := newLogger(g.errOut, logLevel, logFormat)
			if err != nil {
				return err
			}
			opts.Logger = logger
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opts.Ready = func(r authzserver.Ready) { printAuthzReady(g, opts, r) }
			return authzserver.Run(ctx, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Listen, "listen", authzserver.DefaultListen, "gRPC address (plaintext is refused off loopback without TLS or --allow-plaintext)")
	f.StringArrayVar(&opts.Policy, "policy", nil, "a .rego file, or a directory of .rego and data (.json, .yaml) files; repeatable")
	f.StringVar(&opts.Query, "query", authzserver.DefaultQuery, "the decision: a boolean, or an object {allowed, headers, body, http_status, ...}")
	f.DurationVar(&opts.DecisionTimeout, "decision-timeout", authzserver.DefaultDecisionTimeout, "evaluation budget per request; past it the Check fails (DEADLINE_EXCEEDED)")
	f.BoolVar(&opts.Watch, "watch", false, "reload the policy when its files change (polled every 2 s)")
	f.IntVar(&opts.MaxRequestBytes, "max-request-bytes", authzserver.DefaultMaxRequestBytes, "deny a CheckRequest larger than this without evaluating it")
	f.BoolVar(&opts.RegoV0, "v0-compatible", false, "parse modules with the pre-1.0 Rego syntax (policies not yet ported to Rego v1)")
	f.StringVar(&opts.TLSCert, "tls-cert", "", "serve TLS with this certificate (PEM)")
	f.StringVar(&opts.TLSKey, "tls-key", "", "the key of --tls-cert (PEM)")
	f.StringVar(&opts.ClientCA, "client-ca", "", "require client certificates that chain to these roots (PEM): mutual TLS")
	f.BoolVar(&opts.AllowPlaintext, "allow-plaintext", false, "allow plaintext gRPC on a non-loopback --listen address")
	f.StringVar(&opts.MetricsAddr, "metrics-addr", "", "serve Prometheus counters at http://ADDR/metrics (off if empty)")
	f.StringVar(&logLevel, "log-level", "info", "debug (logs every decision), info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}

func printAuthzReady(g *globals, opts authzserver.RunOptions, r authzserver.Ready) {
	transport := "plaintext"
	switch {
	case r.MTLS:
		transport = "mutual TLS"
	case r.TLS:
		transport = "TLS"
	}
	fmt.Fprintf(g.out, "Weft authz server ready\n  gRPC:    %s   (%s; envoy.service.auth.v3.Authorization, grpc.health.v1)\n", r.Listen, transport)
	if r.Policy != nil {
		fmt.Fprintf(g.out, "  policy:  %s   (query %s)\n", strings.Join(r.Policy.Modules(), ", "), opts.Query)
	} else {
		fmt.Fprintf(g.out, "  policy:  NOT LOADED, every request is denied: %v\n", r.LoadError)
	}
	if opts.Watch {
		fmt.Fprintln(g.out, "  watch:   reloading on change (every 2 s)")
	}
	if r.Metrics != "" {
		fmt.Fprintf(g.out, "  metrics: http://%s/metrics\n", r.Metrics)
	}
}
