// Package sidecar is weft-proxy's command line: it parses the flags, starts
// the proxy, waits for its first config, then starts and supervises the app
// given after "--", and exits with the app's exit code.
package sidecar

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy"
	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/supervisor"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// Main runs weft-proxy with args (without the program name) and returns
// the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("weft-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		labels, inbound, upstreams multi
		o                          proxy.Options
		logLevel, logFormat        string
		readyTimeout, drain        time.Duration
		httpProxyEnv, showVersion  bool
		appAddress                 string
		caBundle                   string
		accessLogFields            string
		tracingSampleRate          string
	)
	fs.StringVar(&o.ControlPlane, "control-plane", envOr("WEFT_CONTROL_PLANE", "127.0.0.1:15010"), "control plane xDS address (env WEFT_CONTROL_PLANE)")
	fs.StringVar(&o.Workload, "workload", os.Getenv("WEFT_WORKLOAD"), "this instance's name, unique in its namespace (env WEFT_WORKLOAD)")
	fs.StringVar(&o.Namespace, "namespace", envOr("WEFT_NAMESPACE", "default"), "namespace of the workload (env WEFT_NAMESPACE)")
	fs.Var(&labels, "label", "workload label KEY=VALUE; Services select on labels (repeatable)")
	fs.StringVar(&o.Address, "address", "127.0.0.1", "IP address other proxies reach this workload's inbound ports on")
	fs.Var(&inbound, "inbound", "inbound port PORT:APP_PORT[/PROTOCOL]: mesh traffic for the app's APP_PORT arrives on PORT; PROTOCOL is HTTP (default), HTTP2, GRPC or TCP (repeatable)")
	fs.StringVar(&o.TrustDomain, "trust-domain", envOr("WEFT_TRUST_DOMAIN", "weft.local"), "trust domain of the mesh (env WEFT_TRUST_DOMAIN)")
	fs.StringVar(&o.Identity, "identity", os.Getenv("WEFT_IDENTITY"), "the workload's identity: its SPIFFE ID is spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/IDENTITY (env WEFT_IDENTITY; default: the app label, else the workload name)")
	fs.StringVar(&o.Token, "token", os.Getenv("WEFT_TOKEN"), "join token for the first certificate, from `weft token create` (env WEFT_TOKEN)")
	fs.StringVar(&o.CAPin, "ca-pin", os.Getenv("WEFT_CA_PIN"), "sha256:HEX pin of the mesh CA, printed by `weft token create` (env WEFT_CA_PIN)")
	fs.StringVar(&caBundle, "ca-bundle", os.Getenv("WEFT_CA_BUNDLE"), "PEM file of the mesh's roots, instead of --ca-pin (env WEFT_CA_BUNDLE)")
	fs.StringVar(&o.Issuer, "issuer", os.Getenv("WEFT_ISSUER"), "control plane's certificate issuer (env WEFT_ISSUER; default: the control plane's host, port 15012)")
	fs.StringVar(&appAddress, "app-address", "127.0.0.1", "IP address the app listens on (the inbound ports forward there)")
	fs.StringVar(&o.Outbound, "outbound", "127.0.0.1:15001", "outbound HTTP listener the app sends mesh requests to (usable as HTTP_PROXY); \"none\" disables it")
	fs.Var(&upstreams, "upstream", "local port for one service HOST[:PORT]=LISTEN_ADDR, e.g. catalog.shop=127.0.0.1:9001 (repeatable)")
	fs.StringVar(&o.Admin, "admin", "127.0.0.1:15000", "admin listener (/ready, /config_dump, /stats/edges, /metrics); \"none\" disables it")
	fs.StringVar(&o.AccessLog, "access-log", os.Getenv("WEFT_ACCESS_LOG"), "write an access log (JSON lines) to this file, or \"-\" for stdout (env WEFT_ACCESS_LOG; default off)")
	fs.StringVar(&accessLogFields, "access-log-fields", "", "comma-separated access log fields, in order (default all: "+strings.Join(accesslog.DefaultFields, ",")+")")
	fs.StringVar(&o.Tracing.Endpoint, "tracing-endpoint", os.Getenv("WEFT_TRACING_ENDPOINT"), "export spans to this OTLP collector whatever the mesh config says: host:port for grpc, a URL for http (env WEFT_TRACING_ENDPOINT)")
	fs.StringVar(&o.Tracing.Protocol, "tracing-protocol", "grpc", "OTLP protocol of --tracing-endpoint: grpc or http")
	fs.StringVar(&tracingSampleRate, "tracing-sample-rate", "1", "share of new traces --tracing-endpoint records, 0..1 (an incoming decision is respected)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&readyTimeout, "ready-timeout", 2*time.Minute, "give up if no complete config arrives in this time (0: wait forever)")
	fs.DurationVar(&drain, "drain", 5*time.Second, "how long in-flight requests may finish at shutdown")
	fs.BoolVar(&httpProxyEnv, "http-proxy-env", false, "also set HTTP_PROXY/http_proxy for the app to the outbound listener")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: weft-proxy [flags] [-- app command...]\n\nWeft's sidecar proxy. With an app command it starts the app once the proxy is ready,\nforwards signals to it and exits with its exit code.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if showVersion {
		fmt.Fprintln(stdout, "weft-proxy", proxy.Version)
		return 0
	}
	appArgs := fs.Args()

	logger, err := newLogger(stderr, logLevel, logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy:", err)
		return 2
	}
	o.Logger = logger
	if o.Outbound == "none" {
		o.Outbound = ""
	}
	if o.Admin == "none" {
		o.Admin = ""
	}
	if accessLogFields != "" {
		if o.AccessLogFields, err = accesslog.ParseFields(accessLogFields); err != nil {
			fmt.Fprintln(stderr, "weft-proxy: --access-log-fields:", err)
			return 2
		}
	}
	if o.Tracing.SampleRate, err = proxy.ParseSampleRate(tracingSampleRate); err != nil {
		fmt.Fprintln(stderr, "weft-proxy: --tracing-sample-rate:", err)
		return 2
	}
	switch o.Tracing.Protocol {
	case "grpc", "http":
	default:
		fmt.Fprintf(stderr, "weft-proxy: --tracing-protocol %q: use grpc or http\n", o.Tracing.Protocol)
		return 2
	}
	if o.Labels, err = parseLabels(labels); err == nil {
		if o.Inbound, err = parseInbound(inbound); err == nil {
			o.Upstreams, err = parseUpstreams(upstreams)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy:", err)
		return 2
	}
	if o.Identity == "" {
		o.Identity = o.Labels["app"]
		if o.Identity == "" {
			o.Identity = o.Workload
		}
	}
	if o.Issuer == "" {
		if host, _, err := net.SplitHostPort(o.ControlPlane); err == nil {
			o.Issuer = net.JoinHostPort(host, "15012")
		}
	}
	if caBundle != "" {
		td, err := spiffeid.TrustDomainFromString(o.TrustDomain)
		if err != nil {
			fmt.Fprintf(stderr, "weft-proxy: --trust-domain %q: %v\n", o.TrustDomain, err)
			return 2
		}
		b, err := x509bundle.Load(td, caBundle)
		if err != nil {
			fmt.Fprintln(stderr, "weft-proxy: --ca-bundle:", err)
			return 2
		}
		o.CARoots = b.X509Authorities()
	}
	if net.ParseIP(appAddress) == nil {
		fmt.Fprintf(stderr, "weft-proxy: --app-address %q is not an IP address\n", appAddress)
		return 2
	}
	for i := range o.Inbound {
		if appAddress != "127.0.0.1" {
			o.Inbound[i].AppAddress = appAddress
		}
	}
	p, err := proxy.New(o)
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy:", err)
		return 2
	}
	if err := p.Start(); err != nil {
		fmt.Fprintln(stderr, "weft-proxy:", err)
		return 1
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx, drain) }()

	// Wait for the first complete config.
	var timeout <-chan time.Time
	if readyTimeout > 0 {
		t := time.NewTimer(readyTimeout)
		defer t.Stop()
		timeout = t.C
	}
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	started := time.Now()
wait:
	for {
		select {
		case <-p.Ready():
			break wait
		case <-progress.C:
			logger.Warn("still waiting for configuration from the control plane; is `weft control` running and reachable?",
				"control_plane", o.ControlPlane, "waited", time.Since(started).Round(time.Second).String())
		case <-timeout:
			logger.Error("no configuration from the control plane in time; giving up", "control_plane", o.ControlPlane, "timeout", readyTimeout)
			cancel()
			<-runDone
			return 1
		case sig := <-sigs:
			logger.Info("signal before ready; stopping", "signal", sig.String())
			cancel()
			<-runDone
			return 128 + int(sig.(syscall.Signal))
		case err := <-runDone:
			logger.Error("proxy stopped", "error", err)
			return 1
		}
	}

	if len(appArgs) == 0 {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGINT || sig == syscall.SIGTERM || sig == syscall.SIGQUIT {
					logger.Info("stopping", "signal", sig.String())
					cancel()
					<-runDone
					return 0
				}
			case err := <-runDone:
				if err != nil {
					logger.Error("proxy stopped", "error", err)
					return 1
				}
				return 0
			}
		}
	}

	app, err := supervisor.Start(supervisor.Options{
		Args:   appArgs,
		Env:    appEnv(o, p.AdminAddr(), httpProxyEnv),
		Logger: logger.With("component", "supervisor"),
	})
	if err != nil {
		logger.Error("could not start the app", "error", err)
		cancel()
		<-runDone
		return 127
	}
	for {
		select {
		case sig := <-sigs:
			app.Signal(sig)
		case <-app.Done():
			code := app.ExitCode()
			logger.Info("app exited; stopping the proxy", "code", code)
			cancel()
			<-runDone
			return code
		case err := <-runDone:
			// The proxy cannot go on: stop the app too.
			logger.Error("proxy stopped; stopping the app", "error", err)
			app.Signal(syscall.SIGTERM)
			<-app.Done()
			return 1
		}
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

func parseLabels(vals []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE", v)
		}
		out[k] = val
	}
	return out, nil
}

// ParseInbound parses PORT:APP_PORT[/PROTOCOL].
func parseInbound(vals []string) ([]proxy.Inbound, error) {
	var out []proxy.Inbound
	for _, v := range vals {
		spec, protocol, _ := strings.Cut(v, "/")
		ps, as, ok := strings.Cut(spec, ":")
		port, err1 := strconv.ParseUint(ps, 10, 16)
		app, err2 := strconv.ParseUint(as, 10, 16)
		if !ok || err1 != nil || err2 != nil || port == 0 || app == 0 {
			return nil, fmt.Errorf("--inbound %q: want PORT:APP_PORT[/PROTOCOL], e.g. 15006:8080", v)
		}
		protocol = strings.ToUpper(protocol)
		switch protocol {
		case "":
			protocol = xdsmeta.ProtocolHTTP
		case xdsmeta.ProtocolHTTP, xdsmeta.ProtocolHTTP2, xdsmeta.ProtocolGRPC, xdsmeta.ProtocolTCP:
		default:
			return nil, fmt.Errorf("--inbound %q: protocol must be HTTP, HTTP2, GRPC or TCP", v)
		}
		out = append(out, proxy.Inbound{Port: uint32(port), AppPort: uint32(app), Protocol: protocol})
	}
	return out, nil
}

func parseUpstreams(vals []string) ([]proxy.Upstream, error) {
	var out []proxy.Upstream
	for _, v := range vals {
		host, listen, ok := strings.Cut(v, "=")
		if !ok || host == "" {
			return nil, fmt.Errorf("--upstream %q: want HOST[:PORT]=LISTEN_ADDR, e.g. catalog.shop=127.0.0.1:9001", v)
		}
		if _, _, err := net.SplitHostPort(listen); err != nil {
			return nil, fmt.Errorf("--upstream %q: listen address: %v", v, err)
		}
		out = append(out, proxy.Upstream{Host: host, Listen: listen})
	}
	return out, nil
}

func appEnv(o proxy.Options, admin string, httpProxy bool) []string {
	var env []string
	for _, e := range os.Environ() {
		// The join token is the proxy's, not the app's.
		if !strings.HasPrefix(e, "WEFT_TOKEN=") {
			env = append(env, e)
		}
	}
	env = append(env, "WEFT_WORKLOAD="+o.Workload, "WEFT_NAMESPACE="+o.Namespace)
	if admin != "" {
		env = append(env, "WEFT_ADMIN="+admin)
	}
	if o.Outbound != "" {
		env = append(env, "WEFT_OUTBOUND=http://"+o.Outbound)
		if httpProxy {
			env = append(env, "HTTP_PROXY=http://"+o.Outbound, "http_proxy=http://"+o.Outbound)
		}
	}
	for _, u := range o.Upstreams {
		env = append(env, xdsmeta.UpstreamEnv(u.Host)+"="+u.Listen)
	}
	return env
}
