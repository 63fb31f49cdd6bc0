package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/controlplane"
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
			var lv slog.Level
			if err := lv.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: use debug, info, warn or error", logLevel)
			}
			ho := &slog.HandlerOptions{Level: lv}
			switch logFormat {
			case "text":
				opts.Logger = slog.New(slog.NewTextHandler(g.errOut, ho))
			case "json":
				opts.Logger = slog.New(slog.NewJSONHandler(g.errOut, ho))
			default:
				return fmt.Errorf("--log-format %q: use text or json", logFormat)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opts.Ready = func(xdsAddr, apiAddr string) {
				fmt.Fprintf(g.out, "Weft control plane ready\n  API:  http://%s   (export WEFT_SERVER=http://%s)\n  xDS:  %s   (weft run --control-plane %s ...)\n  data: %s\n",
					apiAddr, apiAddr, xdsAddr, xdsAddr, opts.DataDir)
			}
			return controlplane.Run(ctx, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "directory of the embedded store (env WEFT_DATA_DIR)")
	f.StringVar(&opts.XDSAddr, "xds-addr", controlplane.DefaultXDSAddr, "address proxies connect to (ADS over gRPC)")
	f.StringVar(&opts.APIAddr, "api-addr", controlplane.DefaultAPIAddr, "address of the resource API")
	f.DurationVar(&opts.Grace, "registration-grace", registry.DefaultGrace, "how long a disconnected workload keeps its endpoints")
	f.DurationVar(&opts.Debounce, "debounce", 100*time.Millisecond, "quiet period before a config push")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}
