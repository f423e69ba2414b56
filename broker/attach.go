package broker

// Consumers attach to subscriptions through one call, as producers attach
// to partitions (producers.go): the broker owns what both protocols share,
// as Pulsar does (the topic owns its producers, the subscription owns its
// dispatcher). A Pulsar consumer, a Kafka share member (share_state.go)
// and a Kafka group member all come through Subscription.AddConsumer and
// leave through the handle's Close; no handler keeps its own registry of
// dispatchers.

import (
	"context"
	"sync"
)

// ConsumerSpec describes a consumer attaching to a subscription
// (Subscription.AddConsumer).
type ConsumerSpec struct {
	// Info is what statistics report (Info.Dispatch is set by AddConsumer).
	Info ConsumerInfo
	// Priority is the consumer's priority level (Pulsar priority_level:
	// Shared dispatch prefers the lowest level with permits).
	Priority int
	// Dispatch configures the subscription's dispatcher if this consumer is
	// the one that starts it (Partition, Cursor and Subscription are set by
	// the subscription). Its Type must be the live dispatcher's, else
	// AddConsumer fails with ErrInUse.
	Dispatch DispatchOptions
}

// ConsumerHandle is a consumer attached to a subscription: registered with
// the subscription's dispatcher (if it takes deliveries), holding the
// subscription (DeleteSubscription without force is refused) and, with a
// sink, the partition (DeleteTopic without force is refused), and listed
// in the statistics. Close detaches it. Methods are safe for concurrent
// use.
type ConsumerHandle struct {
	sub  *Subscription
	disp *Dispatcher
	dc   *DispatchConsumer

	release, unlist, detach func()
	once                    sync.Once
}

// AddConsumer attaches a consumer to the subscription. With a sink, the
// consumer joins the subscription's dispatcher (started with
// spec.Dispatch if none is live) and is delivered entries through sink;
// its unacknowledged entries go to the other consumers when it closes.
// With a nil sink it is a member that takes no deliveries (a Kafka group
// member: it fetches by offset), only held and listed. Errors: ErrInUse
// (the live dispatcher has another type, or an Exclusive subscription
// already has a consumer), ctx's error.
func (s *Subscription) AddConsumer(ctx context.Context, spec ConsumerSpec, sink ConsumerSink) (*ConsumerHandle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := &ConsumerHandle{sub: s}
	if sink != nil {
		h.dc = &DispatchConsumer{Name: spec.Info.Name, Priority: spec.Priority, Sink: sink}
		opts := spec.Dispatch
		opts.Partition = s.Partition()
		d, err := s.attach(opts, h.dc)
		if err != nil {
			return nil, err
		}
		h.disp = d
		h.detach = s.Partition().Attach()
	}
	spec.Info.Dispatch = h.dc
	h.release = s.Hold()
	h.unlist = s.listConsumer(spec.Info)
	return h, nil
}

// Subscription is the subscription the consumer is attached to.
func (h *ConsumerHandle) Subscription() *Subscription { return h.sub }

// Dispatcher is the subscription's dispatcher the consumer is registered
// with (nil without a sink): Flow, Ack, Redeliver and the like go there.
func (h *ConsumerHandle) Dispatcher() *Dispatcher { return h.disp }

// Consumer is the consumer's dispatcher registration (nil without a sink).
func (h *ConsumerHandle) Consumer() *DispatchConsumer { return h.dc }

// Close detaches the consumer (idempotent): what was delivered to it and
// is not acknowledged is replayed to the subscription's other consumers
// (either protocol), counted as a redelivery; the dispatcher stops when
// its last consumer leaves.
func (h *ConsumerHandle) Close() {
	h.once.Do(func() {
		if h.disp != nil {
			h.sub.detach(h.disp, h.dc)
			h.detach()
		}
		h.unlist()
		h.release()
	})
}
