package authzserver

import (
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"
)

// Metrics (Prometheus text format, GET /metrics on --metrics-addr):
//
//	weft_authz_checks_total{decision="allow|deny|error"}  counter
//	weft_authz_check_duration_milliseconds                histogram, whole Check
//	weft_authz_policy_reloads_total{result="ok|error"}    counter
//	weft_authz_policy_loaded                              gauge, 1 while a good policy serves
//	weft_authz_policy_loaded_timestamp_seconds            gauge, when the serving policy compiled

// durationBuckets are the histogram's upper bounds in milliseconds.
var durationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000}

// Stats are the server's counters. All methods are safe for concurrent use
// and never block.
type Stats struct {
	Allow, Deny, Error    atomic.Uint64
	ReloadOK, ReloadError atomic.Uint64
	buckets               [14]atomic.Uint64 // len(durationBuckets)+1 (+Inf)
	sumMicros             atomic.Uint64
}

func (s *Stats) observe(d time.Duration) {
	ms := float64(d) / float64(time.Millisecond)
	i := 0
	for i < len(durationBuckets) && ms > durationBuckets[i] {
		i++
	}
	s.buckets[i].Add(1)
	s.sumMicros.Add(uint64(d / time.Microsecond))
}

// writeMetrics writes the counters in Prometheus text format.
func (s *Server) writeMetrics(w io.Writer) {
	st := &s.stats
	fmt.Fprintln(w, "# HELP weft_authz_checks_total Check calls answered, by decision.")
	fmt.Fprintln(w, "# TYPE weft_authz_checks_total counter")
	fmt.Fprintf(w, "weft_authz_checks_total{decision=\"allow\"} %d\n", st.Allow.Load())
	fmt.Fprintf(w, "weft_authz_checks_total{decision=\"deny\"} %d\n", st.Deny.Load())
	fmt.Fprintf(w, "weft_authz_checks_total{decision=\"error\"} %d\n", st.Error.Load())
	fmt.Fprintln(w, "# HELP weft_authz_check_duration_milliseconds Time to answer a Check.")
	fmt.Fprintln(w, "# TYPE weft_authz_check_duration_milliseconds histogram")
	var cum uint64
	for i, le := range durationBuckets {
		cum += st.buckets[i].Load()
		fmt.Fprintf(w, "weft_authz_check_duration_milliseconds_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	cum += st.buckets[len(durationBuckets)].Load()
	fmt.Fprintf(w, "weft_authz_check_duration_milliseconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(w, "weft_authz_check_duration_milliseconds_sum %g\n", float64(st.sumMicros.Load())/1000)
	fmt.Fprintf(w, "weft_authz_check_duration_milliseconds_count %d\n", cum)
	fmt.Fprintln(w, "# HELP weft_authz_policy_reloads_total Policy loads, by result.")
	fmt.Fprintln(w, "# TYPE weft_authz_policy_reloads_total counter")
	fmt.Fprintf(w, "weft_authz_policy_reloads_total{result=\"ok\"} %d\n", st.ReloadOK.Load())
	fmt.Fprintf(w, "weft_authz_policy_reloads_total{result=\"error\"} %d\n", st.ReloadError.Load())
	loaded, ts := 0, 0.0
	if p := s.policy.Load(); p != nil {
		loaded, ts = 1, float64(p.loaded.UnixMilli())/1000
	}
	fmt.Fprintln(w, "# HELP weft_authz_policy_loaded 1 while a good policy serves, 0 while every request is denied.")
	fmt.Fprintln(w, "# TYPE weft_authz_policy_loaded gauge")
	fmt.Fprintf(w, "weft_authz_policy_loaded %d\n", loaded)
	fmt.Fprintln(w, "# HELP weft_authz_policy_loaded_timestamp_seconds When the serving policy was compiled.")
	fmt.Fprintln(w, "# TYPE weft_authz_policy_loaded_timestamp_seconds gauge")
	fmt.Fprintf(w, "weft_authz_policy_loaded_timestamp_seconds %.3f\n", ts)
}
