package metrics

import "github.com/prometheus/client_golang/prometheus"

// Reasons a log line or a span is lost: the reason label of
// weft_proxy_access_log_dropped_total and weft_proxy_spans_dropped_total.
const (
	// ReasonQueueFull: the bounded queue in front of the writer or the
	// exporter was full (the data path never waits for it).
	ReasonQueueFull = "queue_full"
	// ReasonWriteError: the access log's output refused the write.
	ReasonWriteError = "write_error"
	// ReasonExportFailed: the export to the OTLP collector failed, on
	// every endpoint tried.
	ReasonExportFailed = "export_failed"
)

// AccessLogCounts are the access log's loss counters.
type AccessLogCounts struct {
	QueueFull, WriteError uint64
}

// SpanCounts are the tracers' export counters.
type SpanCounts struct {
	Exported, QueueFull, ExportFailed uint64
}

// ObserveAccessLog exposes weft_proxy_access_log_dropped_total{reason},
// read from fn at every scrape (the access log counts with atomics; the
// data path pays nothing more). Call it once.
func (m *Metrics) ObserveAccessLog(fn func() AccessLogCounts) {
	m.reg.MustRegister(&accessLogCollector{fn: fn, dropped: prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "proxy", "access_log_dropped_total"),
		"Access-log lines lost, by reason: queue_full (the writer could not keep up), write_error (the output refused them).",
		[]string{"reason"}, nil)})
}

// ObserveSpans exposes weft_proxy_spans_exported_total and
// weft_proxy_spans_dropped_total{reason}, read from fn at every scrape.
// Call it once.
func (m *Metrics) ObserveSpans(fn func() SpanCounts) {
	m.reg.MustRegister(&spanCollector{fn: fn,
		exported: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "proxy", "spans_exported_total"),
			"Spans the OTLP collector accepted.", nil, nil),
		dropped: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "proxy", "spans_dropped_total"),
			"Spans lost, by reason: queue_full (the export queue was full), export_failed (the export failed on every collector endpoint tried).",
			[]string{"reason"}, nil)})
}

type accessLogCollector struct {
	fn      func() AccessLogCounts
	dropped *prometheus.Desc
}

func (c *accessLogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.dropped }

func (c *accessLogCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.fn()
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n.QueueFull), ReasonQueueFull)
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n.WriteError), ReasonWriteError)
}

type spanCollector struct {
	fn                func() SpanCounts
	exported, dropped *prometheus.Desc
}

func (c *spanCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.exported; ch <- c.dropped }

func (c *spanCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.fn()
	ch <- prometheus.MustNewConstMetric(c.exported, prometheus.CounterValue, float64(n.Exported))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n.QueueFull), ReasonQueueFull)
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n.ExportFailed), ReasonExportFailed)
}

var (
	_ prometheus.Collector = (*accessLogCollector)(nil)
	_ prometheus.Collector = (*spanCollector)(nil)
)
