package kafka

// KIP-848 members as subscription consumers, as classic members are
// (group_attach.go): each live member of a consumer-protocol group is
// attached (Subscription.AddConsumer without a sink: listed and held) to
// the group's subscription on every partition it owns (assigned or being
// revoked), so that the admin API and pulsar-admin list it next to Pulsar
// consumers and deleting the subscription without force is refused while
// it owns it. A static member that left (epoch -2) owns its partitions for
// its next incarnation but is not a live consumer: it is not attached.
//
// Detaching only takes subscription locks and is done under c.mu as the
// ownership changes (heartbeats, expiries, deletion); attaching opens
// partitions and is done after a heartbeat, outside it. A subscription
// that does not exist yet (no commit) is looked for again one heartbeat
// interval later.

import (
	"context"
	"errors"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

// cgAttachment is one member's attachment to the subscription of one
// partition.
type cgAttachment struct {
	member string
	h      *broker.ConsumerHandle
}

// liveOwnerLocked is the member whose attachment tp should have ("" for
// none). Expects c.mu held.
func (cg *consumerGroup) liveOwnerLocked(tp cgTP) string {
	id := cg.st.owner[tp]
	if m := cg.st.members[id]; m == nil || m.epoch == cgEpochStaticLeft {
		return ""
	}
	return id
}

// detachStaleLocked closes the attachments whose partition changed owner
// or lost it. Expects c.mu held.
func (cg *consumerGroup) detachStaleLocked() {
	for tp, a := range cg.att {
		if cg.liveOwnerLocked(tp) != a.member {
			a.h.Close()
			delete(cg.att, tp)
		}
	}
}

// detachAllLocked closes every attachment of cg (the group goes away or
// the handler closes). Expects c.mu held.
func (cg *consumerGroup) detachAllLocked() {
	for tp, a := range cg.att {
		a.h.Close()
		delete(cg.att, tp)
	}
}

// cgAttach attaches the owners of group's partitions that are not attached
// yet. Call without c.mu held.
func (c *coordinator) cgAttach(ctx context.Context, group string) {
	type want struct {
		tp                 cgTP
		member, inst, host string
	}
	now := time.Now()
	c.mu.Lock()
	cg := c.mu.cgroups[group]
	if cg == nil {
		c.mu.Unlock()
		return
	}
	var todo []want
	for tp := range cg.st.owner {
		id := cg.liveOwnerLocked(tp)
		if id == "" || cg.att[tp] != nil || now.Before(cg.attRetry[tp]) {
			continue
		}
		m := cg.st.members[id]
		todo = append(todo, want{tp, id, m.instanceID, m.clientHost})
	}
	c.mu.Unlock()
	topics := map[string]*topicInfo{}
	for _, w := range todo {
		t, ok := topics[w.tp.topic]
		if !ok {
			t, _ = c.h.lookupTopic(ctx, w.tp.topic, internalLookup, false)
			topics[w.tp.topic] = t
		}
		if t == nil {
			continue
		}
		name, ok := t.partition(w.tp.partition)
		if !ok {
			continue
		}
		var h *broker.ConsumerHandle
		p, err := c.h.svc.OpenPartition(ctx, name, false)
		if err == nil {
			var sub *broker.Subscription
			if sub, err = p.Subscription(ctx, group, false, broker.InitialLatest); err == nil {
				info := broker.ConsumerInfo{Name: w.member, Protocol: "kafka", Address: w.host, ConnectedSince: now}
				if w.inst != "" {
					info.Metadata = map[string]string{"group.instance.id": w.inst}
				}
				h, err = sub.AddConsumer(ctx, broker.ConsumerSpec{Info: info}, nil)
			}
		}
		c.mu.Lock()
		cg := c.mu.cgroups[group]
		switch {
		case err != nil:
			if !errors.Is(err, broker.ErrSubscriptionNotFound) {
				c.h.log.DebugContext(ctx, "kafka: attaching consumer group member", "group", group, "topic", name.String(), "err", err)
			}
			if cg != nil {
				cg.attRetry[w.tp] = now.Add(cgHeartbeatInterval)
			}
		case cg == nil || cg.att[w.tp] != nil || cg.liveOwnerLocked(w.tp) != w.member || handlerClosing(c.h):
			h.Close() // changed meanwhile, or the handler is closing (detachAll ran)
		default:
			cg.att[w.tp] = &cgAttachment{member: w.member, h: h}
			delete(cg.attRetry, w.tp)
		}
		c.mu.Unlock()
	}
}

// handlerClosing reports whether h's Close has begun.
func handlerClosing(h *Handler) bool {
	select {
	case <-h.closing:
		return true
	default:
		return false
	}
}
