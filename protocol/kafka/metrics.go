package kafka

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the handler's Prometheus collectors. With no registerer they
// still count (cheaply) and are simply not exported.
type metrics struct {
	requests    *prometheus.CounterVec   // by api
	duration    *prometheus.HistogramVec // by api
	connections prometheus.Gauge
	closed      *prometheus.CounterVec // connections closed by the broker, by reason
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kopernik", Subsystem: "kafka", Name: "requests_total",
			Help: "Kafka requests served, by API.",
		}, []string{"api"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kopernik", Subsystem: "kafka", Name: "request_duration_seconds",
			Help:    "Time from decoded request to response ready, by API (Fetch includes its long poll).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"api"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kopernik", Subsystem: "kafka", Name: "connections",
			Help: "Open Kafka client connections.",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kopernik", Subsystem: "kafka", Name: "connections_closed_total",
			Help: "Connections the broker closed, by reason (malformed, error, idle).",
		}, []string{"reason"}),
	}
	if reg != nil {
		m.requests = registerCollector(reg, m.requests)
		m.duration = registerCollector(reg, m.duration)
		m.connections = registerCollector(reg, m.connections)
		m.closed = registerCollector(reg, m.closed)
	}
	return m
}

// registerCollector registers c, reusing an identical collector already registered
// (a second handler in the same process shares the series).
func registerCollector[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
