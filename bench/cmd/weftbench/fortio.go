package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// fortioResult is the part of fortio's JSON output the benchmark uses.
type fortioResult struct {
	ActualQPS         float64
	ActualDuration    int64 // ns
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Avg         float64
		Percentiles []struct {
			Percentile float64
			Value      float64 // seconds
		}
	}
}

func (r *fortioResult) percentileMS(p float64) float64 {
	for _, q := range r.DurationHistogram.Percentiles {
		if q.Percentile == p {
			return q.Value * 1000
		}
	}
	return -1
}

func (r *fortioResult) errors() int64 {
	var n int64
	for code, c := range r.RetCodes {
		if code != "200" {
			n += c
		}
	}
	return n
}

// load describes one fortio run.
type load struct {
	qps      int // 0: as fast as possible
	conns    int
	duration string
}

func (l load) args() []string {
	a := []string{"load", "-qps", strconv.Itoa(l.qps), "-c", strconv.Itoa(l.conns), "-t", l.duration,
		"-r", "0.00001", "-p", "50,90,99,99.9", "-quiet", "-allow-initial-errors"}
	if l.qps > 0 {
		a = append(a, "-uniform", "-nocatchup")
	}
	return a
}

func (l load) String() string {
	return "fortio " + strings.Join(l.args(), " ")
}

// runFortio runs fortio in the client namespace on the load CPU and parses
// its JSON output (kept at jsonPath).
func runFortio(cfg *config, l load, url, jsonPath string) (*fortioResult, error) {
	argv := append([]string{"netns", "exec", nsClient, "taskset", "-c", cfg.loadCPU, cfg.fortio}, l.args()...)
	argv = append(argv, "-json", jsonPath, url)
	out, err := exec.Command("ip", argv...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("fortio %s: %v\n%s", url, err, lastLines(string(out), 10))
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, err
	}
	var r fortioResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("fortio JSON %s: %w", jsonPath, err)
	}
	if r.DurationHistogram.Count == 0 {
		return nil, fmt.Errorf("fortio %s: no request completed", url)
	}
	return &r, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
