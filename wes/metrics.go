package wes

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's Prometheus metrics.
type metrics struct {
	submissions  *prometheus.CounterVec
	pollDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, s *Service) *metrics {
	m := &metrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wesgate_submissions_total",
			Help: "Submissions of runs to the scheduler, by outcome (submitted, retry, rejected, failed).",
		}, []string{"outcome"}),
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wesgate_poll_duration_seconds",
			Help:    "Duration of one monitor tick: submitting queued runs and polling active ones.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.submissions, m.pollDuration, &stateCollector{s: s})
	}
	return m
}

var (
	runsDesc = prometheus.NewDesc("wesgate_runs", "Runs in the store, by WES state.", []string{"state"}, nil)
	pollAge  = prometheus.NewDesc("wesgate_poll_last_success_age_seconds",
		"Seconds since the scheduler last answered a poll for an account.", []string{"account"}, nil)
)

// stateCollector reads the run counts and poll ages when scraped.
type stateCollector struct{ s *Service }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runsDesc
	ch <- pollAge
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.s.store.CountStates(ctx, "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(runsDesc, err)
	} else {
		for _, st := range States {
			ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
	}
	for _, p := range c.s.pollStatus() {
		if !p.LastOK.IsZero() {
			ch <- prometheus.MustNewConstMetric(pollAge, prometheus.GaugeValue, time.Since(p.LastOK).Seconds(), p.Account)
		}
	}
}
