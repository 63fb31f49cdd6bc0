package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/controlplane"
	"github.com/weftmesh/weft/controlplane/jwks"
	"github.com/weftmesh/weft/controlplane/registry"
)

func defaultDataDir() string {
	if d := os.Getenv("WEFT_DATA_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".weft"
	}
	return filepath.Join(home, ".weft", "data")
}

func newControlCmd(g *globals) *cobra.Command {
	var (
		opts      controlplane.Options
		logLevel  string
		logFormat string
	)
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane (embedded bbolt store)",
		Long: `Run Weft's control plane: the resource API (for weft apply/get/delete), the xDS
server proxies connect to, and the workload registry. State lives in a bbolt file
under --data-dir; stop with Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(g.errOut, logLevel, logFormat)
			if err != nil {
				return err
			}
			opts.Logger = logger
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opts.Ready = func(a controlplane.Addresses) {
				fmt.Fprintf(g.out, "Weft control plane ready\n  API:     http://%s   (export WEFT_SERVER=http://%s)\n  xDS:     %s   (mutual TLS)\n  issuer:  %s\n  trust:   %s, CA pin %s\n  data:    %s\n  join a workload: weft token create --namespace NS --identity NAME\n",
					a.API, a.API, a.XDS, a.Issuer, a.TrustDomain, a.CAPin, opts.DataDir)
			}
			return controlplane.Run(ctx, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "directory of the embedded store (env WEFT_DATA_DIR)")
	f.StringVar(&opts.XDSAddr, "xds-addr", controlplane.DefaultXDSAddr, "address proxies connect to (ADS over gRPC)")
	f.StringVar(&opts.APIAddr, "api-addr", controlplane.DefaultAPIAddr, "address of the resource API (plain HTTP: keep it on loopback)")
	f.StringVar(&opts.IssuerAddr, "issuer-addr", controlplane.DefaultIssuerAddr, "address proxies get their certificates from (TLS)")
	f.StringVar(&opts.TrustDomain, "trust-domain", "weft.local", "trust domain of the mesh's SPIFFE IDs")
	f.StringVar(&opts.CACert, "ca-cert", "", "use this intermediate CA certificate (PEM) from an existing PKI instead of creating a root")
	f.StringVar(&opts.CAKey, "ca-key", "", "the key of --ca-cert (PEM)")
	f.StringVar(&opts.CABundle, "ca-bundle", "", "the root(s) --ca-cert chains to (PEM)")
	f.DurationVar(&opts.WorkloadCertTTL, "workload-cert-ttl", 24*time.Hour, "lifetime of workload certificates (renewed at half)")
	f.DurationVar(&opts.Grace, "registration-grace", registry.DefaultGrace, "how long a disconnected workload keeps its endpoints")
	f.DurationVar(&opts.Debounce, "debounce", 100*time.Millisecond, "quiet period before a config push")
	f.DurationVar(&opts.JWKSRefresh, "jwks-refresh", jwks.DefaultRefresh, "how often a RequestAuthentication jwksUri is fetched again (and the longest wait between retries while it fails)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}

// newLogger builds the logger of a long-running command from its
// --log-level and --log-format flags.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
