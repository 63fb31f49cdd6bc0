package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/telemetry"
)

func statFixture() *telemetry.Report {
	tr := func(req uint64, rps, succ, p50, p95, p99, mtls float64) telemetry.Traffic {
		return telemetry.Traffic{Requests: req, Success: uint64(math.Round(float64(req) * succ)), RPS: rps, SuccessRate: succ, P50MS: p50, P95MS: p95, P99MS: p99, MTLSShare: mtls}
	}
	return &telemetry.Report{
		Window: "1m0s",
		Services: []telemetry.ServiceStats{
			{Service: "catalog.shop", Traffic: tr(1200, 20, 0.995, 1.234, 8.5, 23.4, 1), Versions: []telemetry.VersionStats{
				{Version: "v1", Traffic: tr(1080, 18, 1, 1.1, 7, 20, 1), Share: 0.9},
				{Version: "v2", Traffic: tr(120, 2, 0.95, 2.2, 12, 48, 1), Share: 0.1},
			}},
			{Service: "reviews.shop", Traffic: tr(600, 10, 0.9, 0.5, 1, 150, 0.5), Versions: []telemetry.VersionStats{
				{Version: "", Traffic: tr(600, 10, 0.9, 0.5, 1, 150, 0.5), Share: 1},
			}},
		},
		Edges: []telemetry.EdgeStats{
			{Source: "shop/loadgen", Destination: "catalog.shop", Traffic: tr(900, 15, 1, 1, 8, 20, 1)},
			{Source: "shop/web", SourceVersion: "v1", Destination: "catalog.shop", Traffic: tr(300, 5, 0.98, 1.5, 9, 30, 1), Versions: []telemetry.VersionStats{
				{Version: "v1", Traffic: tr(270, 4.5, 0.98, 1.5, 9, 30, 1), Share: 0.9},
				{Version: "v2", Traffic: tr(30, 0.5, 0.98, 1.5, 9, 30, 1), Share: 0.1},
			}},
		},
		Workloads: []telemetry.WorkloadStats{{Workload: "shop/catalog-v1", Traffic: tr(1080, 18, 1, 0.9, 6, 18, 1)}},
	}
}

func TestStatOutput(t *testing.T) {
	for _, tc := range []struct{ name, service, output string }{
		{"stat-table", "", ""},
		{"stat-wide", "", "wide"},
		{"stat-json", "", "json"},
		{"stat-service", "catalog.shop", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := statFixture()
			if tc.service != "" {
				rep.Services = rep.Services[:1]
			}
			var out bytes.Buffer
			if err := printStat(&out, rep, tc.service, tc.output); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, out.Bytes())
		})
	}
	var out bytes.Buffer
	if err := printStat(&out, &telemetry.Report{Window: "10s"}, "nope.shop", ""); err != nil || out.String() != "no traffic in the last 10s for nope.shop\n" {
		t.Errorf("%q %v", out.String(), err)
	}
	if err := printStat(&out, statFixture(), "", "yaml"); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestStatAndTapAgainstAPI runs the commands against the real handler.
func TestStatAndTapAgainstAPI(t *testing.T) {
	tel := telemetry.New(telemetry.Options{})
	srv := httptest.NewServer(tel.APIHandler())
	defer srv.Close()

	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetArgs([]string{"--server", srv.URL, "stat", "--window", "10s"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "no traffic in the last 10s\n" {
		t.Errorf("stat: %q", out.String())
	}

	c := NewClient(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		// Push samples until the tap has what it needs.
		for ctx.Err() == nil {
			tel.Ingest("web", "", telemetry.Push{Workload: "web-1", Namespace: "shop", Boot: "b", Samples: []telemetry.Sample{
				{Time: time.Unix(0, 0), Direction: "outbound", Method: "GET", Authority: "catalog.shop", Path: "/items", Status: 200,
					LatencyMS: 1.5, Destination: "catalog.shop", Version: "v1", MTLS: true}}})
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var lines []string
	err := c.Tap(ctx, "catalog", 3, func(s telemetry.Sample) error {
		lines = append(lines, tapLine(s))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || !strings.Contains(lines[0], "shop/web-1 -> catalog.shop v1  GET catalog.shop /items  200  1.50ms  mtls") {
		t.Fatalf("tap lines: %q", lines)
	}
}

func TestTapLineJSONRoundTrip(t *testing.T) {
	s := telemetry.Sample{Method: "POST", Path: "/x", Status: 503}
	b, _ := json.Marshal(s)
	var back telemetry.Sample
	if err := json.Unmarshal(b, &back); err != nil || back.Status != 503 {
		t.Fatal(err)
	}
	_ = http.StatusOK
}
