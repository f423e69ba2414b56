package pulsar

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the handler's Prometheus collectors (registered with
// Env.Metrics when set; a second handler on the same registry shares them).
// Messages and bytes in and out are not counted here: the broker counts
// them per partition and subscription, and the server exports those
// (pulsar_in_messages_total, ...), the same numbers as the admin stats.
type metrics struct {
	connections prometheus.Gauge
	commands    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kopernik",
			Name: "connections", Help: "Open client connections, by protocol."}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kopernik", Subsystem: "pulsar",
			Name: "commands_total", Help: "Pulsar commands received, by type."}, []string{"command"}),
	}
	if reg == nil {
		return m
	}
	register := func(c prometheus.Collector) prometheus.Collector {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector
			}
		}
		return c
	}
	m.connections = register(m.connections).(prometheus.Gauge)
	m.commands = register(m.commands).(*prometheus.CounterVec)
	return m
}
