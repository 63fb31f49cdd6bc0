package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/demo"
)

func newDemoCmd(g *globals) *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole demo mesh on this machine",
		Long: `Run a demo mesh on loopback (127.0.66.0/24): a control plane, web → catalog
(v1 and v2, split 90/10 by an HTTPRoute) → reviews, each with a sidecar, and a
load generator. Every few seconds it prints the traffic per edge. Ctrl-C (or
--for) stops it: it prints a summary and stops every process it started.
It exits non-zero if no traffic flowed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			o.Weft = self
			if o.Proxy, err = ProxyBinary(); err != nil {
				return err
			}
			o.Out = g.out
			o.Apply = func(ctx context.Context, api string) error {
				data, err := demo.Config()
				if err != nil {
					return err
				}
				objs, err := resource.DecodeYAML("demo config", data)
				if err != nil {
					return err
				}
				return applyObjects(ctx, NewClient(api), objs, g.out, g.errOut)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			_, err = demo.Run(ctx, o)
			if err != nil && errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&o.For, "for", 0, "stop after this long, print the summary and exit (0: until Ctrl-C)")
	cmd.Flags().DurationVar(&o.Interval, "interval", 5*time.Second, "time between traffic tables")
	cmd.Flags().IntVar(&o.RPS, "rps", 20, "requests per second from the load generator")
	return cmd
}

func newDemoAppCmd(_ *globals) *cobra.Command {
	var o demo.AppOptions
	cmd := &cobra.Command{
		Use:    "demo-app",
		Short:  "A demo service (started by weft demo behind a sidecar)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if o.Listen == "" {
				return fmt.Errorf("--listen is required")
			}
			return demo.RunApp(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Service, "service", "app", "service name it reports")
	f.StringVar(&o.Version, "version", "v1", "version it reports")
	f.StringVar(&o.Listen, "listen", "", "address to listen on")
	f.StringSliceVar(&o.Calls, "call", nil, "hosts to call for every request (NAME.NAMESPACE)")
	f.DurationVar(&o.Work, "work", time.Millisecond, "mean time each request takes")
	f.Float64Var(&o.ErrorRate, "error-rate", 0, "share of requests answered with 503, evenly spread (0.1: every tenth)")
	return cmd
}
