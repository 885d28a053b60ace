package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pipeline's Prometheus metrics.
type Metrics struct {
	submissions  *prometheus.CounterVec
	settled      *prometheus.CounterVec
	pollDuration prometheus.Histogram
	stage        *prometheus.HistogramVec
	queue        *prometheus.GaugeVec
}

// NewMetrics makes the metrics and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wesgate_submissions_total",
			Help: "Runs handed to the scheduler, by outcome (submitted, retry, rejected).",
		}, []string{"outcome"}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wesgate_runs_settled_total",
			Help: "Runs settled by the pipeline, by final WES state.",
		}, []string{"state"}),
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wesgate_poll_duration_seconds",
			Help:    "Duration of one account's poll (squeue, and sacct for jobs that left the queue).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wesgate_pipeline_stage_duration_seconds",
			Help:    "Duration of one operation of a pipeline stage (submit: a batch; poll; cancel: a batch; settle: a run).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"stage"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wesgate_pipeline_queue",
			Help: "Runs waiting for a pipeline stage (submit, cancel, settle).",
		}, []string{"stage"}),
	}
	if reg != nil {
		reg.MustRegister(m.submissions, m.settled, m.pollDuration, m.stage, m.queue)
	}
	return m
}
