package pulsar

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the handler's Prometheus collectors (registered with
// Env.Metrics when set; a second handler on the same registry shares them).
type metrics struct {
	connections prometheus.Gauge
	commands    *prometheus.CounterVec
	msgsIn      prometheus.Counter
	bytesIn     prometheus.Counter
	msgsOut     prometheus.Counter
	bytesOut    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kopernik", Subsystem: "pulsar",
			Name: "connections", Help: "Open Pulsar protocol connections."}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kopernik", Subsystem: "pulsar",
			Name: "commands_total", Help: "Pulsar commands received, by type."}, []string{"command"}),
		msgsIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kopernik", Subsystem: "pulsar",
			Name: "messages_in_total", Help: "Messages appended from Pulsar producers."}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kopernik", Subsystem: "pulsar",
			Name: "bytes_in_total", Help: "Entry bytes appended from Pulsar producers."}),
		msgsOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kopernik", Subsystem: "pulsar",
			Name: "messages_out_total", Help: "Messages dispatched to Pulsar consumers."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kopernik", Subsystem: "pulsar",
			Name: "bytes_out_total", Help: "Entry bytes dispatched to Pulsar consumers."}),
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
	m.msgsIn = register(m.msgsIn).(prometheus.Counter)
	m.bytesIn = register(m.bytesIn).(prometheus.Counter)
	m.msgsOut = register(m.msgsOut).(prometheus.Counter)
	m.bytesOut = register(m.bytesOut).(prometheus.Counter)
	return m
}
