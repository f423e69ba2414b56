package kafka

import (
	"errors"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metrics are the handler's Prometheus collectors. With no registerer they
// still count (cheaply) and are simply not exported.
type metrics struct {
	requests    *prometheus.CounterVec   // by api
	duration    *prometheus.HistogramVec // by api
	errors      *prometheus.CounterVec   // by api and error
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
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kopernik", Subsystem: "kafka", Name: "request_errors_total",
			Help: "Error codes in Kafka responses, by API and error (one per failed topic, partition or group of a response).",
		}, []string{"api", "error"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kopernik", Name: "connections",
			Help: "Open client connections, by protocol.",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kopernik", Subsystem: "kafka", Name: "connections_closed_total",
			Help: "Connections the broker closed, by reason (malformed, error, idle).",
		}, []string{"reason"}),
	}
	if reg != nil {
		m.requests = registerCollector(reg, m.requests)
		m.duration = registerCollector(reg, m.duration)
		m.errors = registerCollector(reg, m.errors)
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

// countErrors adds every non-zero error code in resp to the errors counter.
func (m *metrics) countErrors(api string, resp kmsg.Response) {
	if resp == nil {
		return
	}
	eachErrorCode(reflect.ValueOf(resp), func(code int16) {
		name := "UNKNOWN_SERVER_ERROR"
		if e := kerr.ErrorForCode(code); e != nil {
			if ke, ok := e.(*kerr.Error); ok {
				name = ke.Message
			}
		}
		m.errors.WithLabelValues(api, name).Inc()
	})
}

// eachErrorCode calls fn with every non-zero int16 field named ErrorCode
// in v, at any depth of structs, pointers and slices of them (kmsg
// responses keep their codes there). Byte slices (records) are skipped.
func eachErrorCode(v reflect.Value, fn func(int16)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			eachErrorCode(v.Elem(), fn)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			eachErrorCode(v.Index(i), fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			fv := v.Field(i)
			if f.Name == "ErrorCode" && fv.Kind() == reflect.Int16 {
				if c := int16(fv.Int()); c != 0 {
					fn(c)
				}
				continue
			}
			eachErrorCode(fv, fn)
		}
	}
}
