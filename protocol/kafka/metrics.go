package kafka

import (
	"errors"
	"reflect"
	"sync"

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
// Produce and Fetch, the hot paths, are walked by type; the rest by
// reflection (eachErrorCode).
func (m *metrics) countErrors(api string, resp kmsg.Response) {
	count := func(code int16) {
		if code == 0 {
			return
		}
		name := "UNKNOWN_SERVER_ERROR"
		if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok {
			name = e.Message
		}
		m.errors.WithLabelValues(api, name).Inc()
	}
	switch r := resp.(type) {
	case nil:
	case *kmsg.ProduceResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				count(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *fetchResponse:
		count(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				count(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	default:
		eachErrorCode(reflect.ValueOf(resp), count)
	}
}

// eachErrorCode calls fn with every int16 field named ErrorCode
// in v, at any depth of structs, pointers and slices of them (kmsg
// responses keep their codes there). It follows only the fields whose type
// can hold an ErrorCode (errorPlanOf, computed once per type), so a
// response costs about one field read per partition.
func eachErrorCode(v reflect.Value, fn func(int16)) {
	if !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			eachErrorCode(v.Elem(), fn)
		}
	case reflect.Slice:
		for i := range v.Len() {
			eachErrorCode(v.Index(i), fn)
		}
	case reflect.Struct:
		plan := errorPlanOf(v.Type())
		if plan.code >= 0 {
			fn(int16(v.Field(plan.code).Int()))
		}
		for _, f := range plan.children {
			eachErrorCode(v.Field(f), fn)
		}
	}
}

// errorPlan is where in a struct type error codes can be: the index of its
// own ErrorCode field (-1: none) and the fields whose types can hold one.
type errorPlan struct {
	code     int
	children []int
}

var errorPlans sync.Map // reflect.Type -> *errorPlan

func errorPlanOf(t reflect.Type) *errorPlan {
	if p, ok := errorPlans.Load(t); ok {
		return p.(*errorPlan)
	}
	p := &errorPlan{code: -1}
	for i := range t.NumField() {
		f := t.Field(i)
		switch {
		case !f.IsExported() && !f.Anonymous:
		case f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16:
			p.code = i
		case holdsErrorCode(f.Type, map[reflect.Type]bool{}):
			p.children = append(p.children, i)
		}
	}
	errorPlans.Store(t, p)
	return p
}

// holdsErrorCode reports whether a value of type t can contain an
// ErrorCode field (seen guards recursive types).
func holdsErrorCode(t reflect.Type, seen map[reflect.Type]bool) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		return holdsErrorCode(t.Elem(), seen)
	case reflect.Interface:
		return true
	case reflect.Struct:
		if seen[t] {
			return false
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 || holdsErrorCode(f.Type, seen) {
				return true
			}
		}
	}
	return false
}
