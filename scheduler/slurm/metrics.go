package slurm

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Slurm executor's Prometheus metrics. A nil *Metrics
// records nothing.
type Metrics struct {
	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	sshEvents       *prometheus.CounterVec
}

// NewMetrics makes and registers the metrics (reg may be nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wesgate_remote_commands_total",
			Help: "Commands run on the cluster, by kind (sbatch, squeue, sacct, scancel, sinfo, sftp) and outcome (ok, exit, error).",
		}, []string{"kind", "outcome"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wesgate_remote_command_duration_seconds",
			Help:    "Duration of commands run on the cluster, by kind.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		sshEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wesgate_ssh_events_total",
			Help: "SSH connection events: connect, reconnect, lost, error, hostkey_error.",
		}, []string{"event"}),
	}
	if reg != nil {
		reg.MustRegister(m.commands, m.commandDuration, m.sshEvents)
	}
	return m
}

func (m *Metrics) command(kind, outcome string, seconds float64) {
	if m == nil {
		return
	}
	m.commands.WithLabelValues(kind, outcome).Inc()
	m.commandDuration.WithLabelValues(kind).Observe(seconds)
}

func (m *Metrics) ssh(event string) {
	if m == nil {
		return
	}
	m.sshEvents.WithLabelValues(event).Inc()
}
