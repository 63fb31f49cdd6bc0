package cli

// weft stat, weft top and weft tap: the control plane's traffic view
// (controlplane/telemetry), fed by the proxies' pushes; no Prometheus
// needed.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/controlplane/telemetry"
)

// Stats reads GET /v1/stats.
func (c *Client) Stats(ctx context.Context, service string, window time.Duration) (*telemetry.Report, error) {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if window > 0 {
		q.Set("window", window.String())
	}
	var rep telemetry.Report
	err := c.Raw(ctx, "/v1/stats?"+q.Encode(), &rep)
	return &rep, err
}

// Tap streams GET /v1/tap, calling fn for each sample until ctx is done,
// max samples arrived (0: no limit) or the server ends the stream.
func (c *Client) Tap(ctx context.Context, service string, max int, fn func(telemetry.Sample) error) error {
	q := url.Values{}
	q.Set("service", service)
	if max > 0 {
		q.Set("max", strconv.Itoa(max))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/tap?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	// No client timeout: the stream lasts as long as the user wants.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot reach the control plane at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("GET /v1/tap: %s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var s telemetry.Sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return fmt.Errorf("tap: %w", err)
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("tap: %w", err)
	}
	return nil
}

func newStatCmd(g *globals) *cobra.Command {
	var output string
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "stat [SERVICE]",
		Short: "Show traffic per service: RPS, success rate, latency, mTLS share",
		Long: `Show the traffic of the last window as the sidecars counted it (they push their
counters to the control plane every 2 seconds): requests per second, success rate
(non-5xx), p50/p95/p99 latency and the share of requests over mutual TLS, per
destination service; with SERVICE, also per version and per client.

SERVICE is name.namespace, or a name (every namespace).`,
		Example: "  weft stat\n  weft stat catalog.shop -o wide\n  weft stat --window 10s -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			rep, err := g.client().Stats(cmd.Context(), service, window)
			if err != nil {
				return err
			}
			return printStat(g.out, rep, service, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or wide (default: table)")
	cmd.Flags().DurationVar(&window, "window", time.Minute, "how far back to look (at most the control plane's window, 1m by default)")
	return cmd
}

// printStat renders a report: a table of services (wide adds p95 and
// the versions); with a service, its versions and clients too.
func printStat(w io.Writer, rep *telemetry.Report, service, output string) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "", "wide":
	default:
		return fmt.Errorf("unknown output format %q (want json or wide)", output)
	}
	wide := output == "wide"
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	if len(rep.Services) == 0 {
		fmt.Fprintf(w, "no traffic in the last %s", rep.Window)
		if service != "" {
			fmt.Fprintf(w, " for %s", service)
		}
		fmt.Fprintln(w)
	} else {
		head := "SERVICE\tRPS\tSUCCESS\tP50\tP99\tMTLS"
		if wide {
			head = "SERVICE\tREQUESTS\tRPS\tSUCCESS\tP50\tP95\tP99\tMTLS\tVERSIONS"
		}
		fmt.Fprintln(tw, head)
		for _, s := range rep.Services {
			if wide {
				var vs []string
				for _, v := range s.Versions {
					vs = append(vs, fmt.Sprintf("%s=%s", orDash(v.Version), pct(v.Share)))
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Service, s.Requests, rps(s.RPS), pct(s.SuccessRate),
					ms(s.P50MS), ms(s.P95MS), ms(s.P99MS), pct(s.MTLSShare), strings.Join(vs, ","))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Service, rps(s.RPS), pct(s.SuccessRate), ms(s.P50MS), ms(s.P99MS), pct(s.MTLSShare))
		}
	}
	if service != "" && len(rep.Services) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "VERSION\tSHARE\tRPS\tSUCCESS\tP50\tP99")
		for _, s := range rep.Services {
			for _, v := range s.Versions {
				fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\n", s.Service, orDash(v.Version), pct(v.Share), rps(v.RPS), pct(v.SuccessRate), ms(v.P50MS), ms(v.P99MS))
			}
		}
		if len(rep.Edges) > 0 {
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "FROM\tTO\tRPS\tSUCCESS\tP99\tMTLS")
			for _, e := range rep.Edges {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", edgeSource(e), e.Destination, rps(e.RPS), pct(e.SuccessRate), ms(e.P99MS), pct(e.MTLSShare))
			}
		}
	}
	if service != "" && len(rep.Workloads) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "WORKLOAD (INBOUND)\tRPS\tSUCCESS\tP50\tP99\tMTLS")
		for _, wl := range rep.Workloads {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", wl.Workload, rps(wl.RPS), pct(wl.SuccessRate), ms(wl.P50MS), ms(wl.P99MS), pct(wl.MTLSShare))
		}
	}
	return tw.Flush()
}

// edgeSource is the client of an edge: namespace/app and its version.
func edgeSource(e telemetry.EdgeStats) string {
	if e.SourceVersion == "" {
		return e.Source
	}
	return e.Source + " " + e.SourceVersion
}

func rps(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" }

func ms(f float64) string {
	if f < 10 {
		return strconv.FormatFloat(f, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(f, 'f', 0, 64) + "ms"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newTopCmd(g *globals) *cobra.Command {
	var window, every time.Duration
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show live traffic per service, refreshed every 2 seconds (Ctrl-C stops)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runTop(ctx, g.client(), g.out, window, every)
		},
	}
	cmd.Flags().DurationVar(&window, "window", 10*time.Second, "how far back each refresh looks")
	cmd.Flags().DurationVar(&every, "interval", 2*time.Second, "refresh interval")
	return cmd
}

// runTop redraws the wide stat table until ctx is done.
func runTop(ctx context.Context, c *Client, w io.Writer, window, every time.Duration) error {
	if every < 100*time.Millisecond {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every+5*time.Second)
		rep, err := c.Stats(rctx, "", window)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		// Clear the screen and home the cursor (plain ANSI).
		fmt.Fprint(w, "\x1b[H\x1b[2J")
		fmt.Fprintf(w, "weft top — last %s, every %s — %s (Ctrl-C to stop)\n\n", window, every, time.Now().Format("15:04:05"))
		if err != nil {
			fmt.Fprintln(w, "error:", err)
		} else {
			_ = printStat(w, rep, "", "wide")
			if len(rep.Edges) > 0 {
				fmt.Fprintln(w)
				tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "FROM\tTO\tRPS\tSUCCESS\tP99\tMTLS")
				for _, e := range rep.Edges {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", edgeSource(e), e.Destination, rps(e.RPS), pct(e.SuccessRate), ms(e.P99MS), pct(e.MTLSShare))
				}
				tw.Flush()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func newTapCmd(g *globals) *cobra.Command {
	var max int
	var output string
	cmd := &cobra.Command{
		Use:   "tap SERVICE",
		Short: "Stream a sample of live requests to or from a service",
		Long: `Stream requests whose source or destination is SERVICE, as the sidecars sample
them (at most 50 per sidecar every 2 seconds, taken only while someone taps).
SERVICE is name.namespace or a name. Ctrl-C stops.`,
		Example: "  weft tap catalog.shop\n  weft tap catalog --max 20 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("unknown output format %q (want json)", output)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			enc := json.NewEncoder(g.out)
			err := g.client().Tap(ctx, args[0], max, func(s telemetry.Sample) error {
				if output == "json" {
					return enc.Encode(s)
				}
				_, err := fmt.Fprintln(g.out, tapLine(s))
				return err
			})
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().IntVar(&max, "max", 0, "stop after N requests (0: until Ctrl-C)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (default: one line per request)")
	return cmd
}

// tapLine renders one sample on one line.
func tapLine(s telemetry.Sample) string {
	mtls := "plain"
	if s.MTLS {
		mtls = "mtls"
	}
	dst := s.Destination
	if s.Version != "" {
		dst += " " + s.Version
	}
	return fmt.Sprintf("%s %-8s %s -> %s  %s %s %s  %d  %s  %s",
		s.Time.Local().Format("15:04:05.000"), s.Direction, orDash(s.Source), orDash(dst),
		s.Method, s.Authority, s.Path, s.Status, ms(s.LatencyMS), mtls)
}
