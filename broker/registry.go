package broker

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ProducerInfo describes an attached producer for statistics (admin
// topic stats "publishers"). It carries no behaviour: access modes and
// fencing are the protocol handlers' business.
type ProducerInfo struct {
	// Name is the producer's name (Pulsar producer_name, Kafka client.id or
	// producer id).
	Name string
	// Protocol is the handler's name: "kafka" or "pulsar".
	Protocol string
	// Address is the client's remote address ("host:port").
	Address string
	// ConnectedSince is when the producer attached; zero means now.
	ConnectedSince time.Time
	// AccessMode is the protocol's own word for it ("Shared", "Exclusive", ...); optional.
	AccessMode string
	// ClientVersion is what the client reported; optional.
	ClientVersion string
	// Metadata is free-form producer metadata; optional.
	Metadata map[string]string
	// Counters, if set, count what the producer appended (its handler
	// adds to them); statistics report its rates from them.
	Counters *ProducerCounters
}

// ProducerCounters count one attached producer's appends (duplicates
// excluded). The zero value is ready; methods are safe for concurrent use.
type ProducerCounters struct {
	msgs, bytes atomic.Int64
	rate        rateMeter
}

// Add counts an accepted append of msgs messages and bytes stored bytes.
func (c *ProducerCounters) Add(msgs, bytes int64) {
	c.msgs.Add(msgs)
	c.bytes.Add(bytes)
}

// Stats returns the totals and the per-second rates over the last window
// of at least 5 s (0 until one has passed).
func (c *ProducerCounters) Stats() (msgs, bytes int64, msgsPerSec, bytesPerSec float64) {
	msgs, bytes = c.msgs.Load(), c.bytes.Load()
	msgsPerSec, bytesPerSec = c.rate.rates(time.Now(), msgs, bytes)
	return msgs, bytes, msgsPerSec, bytesPerSec
}

// ConsumerInfo describes a consumer attached to a subscription, for
// statistics (admin subscription stats "consumers").
type ConsumerInfo struct {
	// Name is the consumer's name (Pulsar consumer_name, Kafka member id).
	Name string
	// Protocol is the handler's name: "kafka" or "pulsar".
	Protocol string
	// Address is the client's remote address.
	Address string
	// ConnectedSince is when the consumer attached; zero means now.
	ConnectedSince time.Time
	// Type is the subscription type in Pulsar's words ("Exclusive",
	// "Shared", "Failover", "Key_Shared"); Kafka group members may leave it
	// empty.
	Type string
	// ClientVersion is what the client reported; optional.
	ClientVersion string
	// Metadata is free-form consumer metadata; optional.
	Metadata map[string]string
	// Dispatch is the consumer's dispatcher registration, when it has one
	// (Pulsar consumers): its permits, unacknowledged messages and
	// delivery counters are reported from it. Kafka group members have
	// none (they fetch; permits do not apply).
	Dispatch *DispatchConsumer
}

// registry holds attached clients in attach order. The zero value is ready.
// Its lock is a leaf: nothing is called while holding it.
type registry[T any] struct {
	mu    sync.Mutex
	next  uint64
	items map[uint64]T
}

// add records v; the returned remove may be called any number of times.
func (r *registry[T]) add(v T) (remove func()) {
	r.mu.Lock()
	if r.items == nil {
		r.items = make(map[uint64]T)
	}
	r.next++
	id := r.next
	r.items[id] = v
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.items, id)
			r.mu.Unlock()
		})
	}
}

// list returns the items in attach order.
func (r *registry[T]) list() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]uint64, 0, len(r.items))
	for id := range r.items {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]T, len(ids))
	for i, id := range ids {
		out[i] = r.items[id]
	}
	return out
}

// listProducer records an attached producer for statistics; call remove
// once when it detaches (AddProducer's handle does both).
func (p *Partition) listProducer(info ProducerInfo) (remove func()) {
	if info.ConnectedSince.IsZero() {
		info.ConnectedSince = time.Now()
	}
	return p.attachedProducers.add(info)
}

// Producers lists the attached producers in attach order.
func (p *Partition) Producers() []ProducerInfo { return p.attachedProducers.list() }

// InCounters returns the messages and bytes appended (duplicates excluded)
// since the partition was loaded.
func (p *Partition) InCounters() (msgs, bytes int64) {
	return p.msgIn.Load(), p.bytesIn.Load()
}

// AddOut counts messages and bytes (as stored) sent to a consumer of
// either protocol: dispatchers count their deliveries, the Kafka handler
// its fetch responses.
func (p *Partition) AddOut(msgs, bytes int64) {
	p.msgOut.Add(msgs)
	p.bytesOut.Add(bytes)
}

// OutCounters returns what AddOut counted since the partition was loaded.
func (p *Partition) OutCounters() (msgs, bytes int64) {
	return p.msgOut.Load(), p.bytesOut.Load()
}

// OutRates returns the rates of what AddOut counted, as InRates does.
func (p *Partition) OutRates() (msgsPerSec, bytesPerSec float64) {
	msgs, bytes := p.OutCounters()
	return p.outRate.rates(time.Now(), msgs, bytes)
}

// listConsumer records a consumer attached to the subscription for
// statistics; call remove once when it detaches (AddConsumer's handle
// does both).
func (s *Subscription) listConsumer(info ConsumerInfo) (remove func()) {
	if info.ConnectedSince.IsZero() {
		info.ConnectedSince = time.Now()
	}
	return s.attachedConsumers.add(info)
}

// Consumers lists the consumers attached to the subscription in attach order.
func (s *Subscription) Consumers() []ConsumerInfo { return s.attachedConsumers.list() }

// AddDelivered counts messages and bytes dispatched to the subscription's
// consumers (statistics only; the subscription's dispatcher calls it).
func (s *Subscription) AddDelivered(msgs, bytes int64) {
	s.msgOut.Add(msgs)
	s.bytesOut.Add(bytes)
}

// OutCounters returns what AddDelivered counted since the partition was loaded.
func (s *Subscription) OutCounters() (msgs, bytes int64) {
	return s.msgOut.Load(), s.bytesOut.Load()
}

// rateWindow is the shortest interval rates are measured over.
const rateWindow = 5 * time.Second

// rateMeter turns two monotonic counters into per-second rates, measured
// between samples at least rateWindow apart; a sample is taken when rates
// are read, so an idle meter costs nothing. The first window reports 0.
type rateMeter struct {
	mu              sync.Mutex
	at              time.Time
	msgs, bytes     int64
	msgRate, byRate float64
}

func (m *rateMeter) rates(now time.Time, msgs, bytes int64) (msgsPerSec, bytesPerSec float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.at.IsZero():
		m.at, m.msgs, m.bytes = now, msgs, bytes
	case now.Sub(m.at) >= rateWindow:
		secs := now.Sub(m.at).Seconds()
		m.msgRate = float64(msgs-m.msgs) / secs
		m.byRate = float64(bytes-m.bytes) / secs
		m.at, m.msgs, m.bytes = now, msgs, bytes
	}
	return m.msgRate, m.byRate
}

// InRates returns the append rates (messages and bytes per second) over the
// last measured window of at least 5 seconds; 0 until one has passed.
func (p *Partition) InRates() (msgsPerSec, bytesPerSec float64) {
	msgs, bytes := p.InCounters()
	return p.inRate.rates(time.Now(), msgs, bytes)
}

// OutRates returns the dispatch rates reported through AddDelivered, as
// InRates does for appends.
func (s *Subscription) OutRates() (msgsPerSec, bytesPerSec float64) {
	msgs, bytes := s.OutCounters()
	return s.outRate.rates(time.Now(), msgs, bytes)
}
