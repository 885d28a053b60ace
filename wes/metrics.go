package wes

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's Prometheus metrics.
type metrics struct{}

func newMetrics(reg prometheus.Registerer, s *Service) *metrics {
	m := &metrics{}
	if reg != nil {
		reg.MustRegister(&stateCollector{s: s})
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
	for _, p := range c.s.watch.Polls() {
		if !p.LastOK.IsZero() {
			ch <- prometheus.MustNewConstMetric(pollAge, prometheus.GaugeValue, time.Since(p.LastOK).Seconds(), p.Account)
		}
	}
}
