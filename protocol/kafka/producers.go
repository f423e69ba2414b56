package kafka

// Kafka producers as the partition's producers: a Kafka client producing
// to a partition is attached with Partition.AddProducer, as a Pulsar
// producer is, so that the admin API's "publishers" (and pulsar-admin)
// list it with its rates next to Pulsar producers, and so that deleting
// the topic without force is refused while it produces.
//
// Kafka has no producer registration: a producer is recognized by the
// connection it produces on and the producer id of its batches (-1 for a
// producer without idempotence), attached on its first produce to a
// partition and detached when the connection closes or after
// kafkaProducerIdle without producing there. Its name, unique on the
// partition, is "kafka-<client id>-<producer id>@<address>".
//
// Access is Shared. So a Pulsar Exclusive producer is refused (and a
// WaitForExclusive one waits) while a Kafka producer is attached, as with
// any other producer; a Kafka producer is never refused because of a
// Pulsar exclusive producer: it produces unlisted (and is attached at a
// later produce once the exclusive producer is gone), and one fenced by a
// Pulsar ExclusiveWithFencing producer is detached, not stopped. Kafka
// producing is not subject to Pulsar's access modes.

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

// kafkaProducerIdle is how long a Kafka producer stays attached to a
// partition it no longer produces to (Kafka's connections.max.idle.ms,
// 10 minutes, is the nearest Kafka notion). Tests lower it.
var kafkaProducerIdle = 10 * time.Minute

// connProducerKey names one Kafka producer on one partition of a
// connection.
type connProducerKey struct {
	name       broker.TopicName
	producerID int64
}

// connProducer is an attached Kafka producer.
type connProducer struct {
	p        *broker.Partition // the partition object (a reload is another)
	counters *broker.ProducerCounters
	// Under connProducers.mu:
	h      *broker.ProducerHandle
	last   time.Time // last produce
	timer  *time.Timer
	fenced bool // fenced before it was published
}

// connProducers are a connection's attached producers.
type connProducers struct {
	mu     sync.Mutex
	m      map[connProducerKey]*connProducer
	closed bool
}

// noteProduced attaches (or refreshes) the producer of records, which
// were appended to p, and counts them. Errors attaching are not the
// produce's: the producer is then only not listed.
func (c *conn) noteProduced(ctx context.Context, p *broker.Partition, records []byte) {
	bh, err := parseBatchHeader(records)
	if err != nil {
		return
	}
	name := p.Name()
	key := connProducerKey{name: name, producerID: bh.producerID}
	now := time.Now()
	cp := &c.producers
	cp.mu.Lock()
	if cp.closed {
		cp.mu.Unlock()
		return
	}
	if pr := cp.m[key]; pr != nil {
		if pr.p == p {
			pr.last = now
			cp.mu.Unlock()
			pr.counters.Add(int64(bh.recordCount), int64(len(records)))
			return
		}
		// An attachment of this producer to an earlier object of the
		// partition (closed and opened again: a topic deleted and created
		// anew, a reload) goes. Keyed by name, so that this is one lookup:
		// a scan of the connection's attachments on every first produce
		// was quadratic (100,000 partitions' first round never finished).
		delete(cp.m, key)
		pr.timer.Stop()
		defer pr.h.Close()
	}
	cp.mu.Unlock()

	counters := &broker.ProducerCounters{}
	addr := ""
	if c.nc != nil { // nil: requests handled without a connection (fuzzing)
		addr = c.nc.RemoteAddr().String()
	}
	pname := "kafka-" + clientIDFrom(ctx) + "-" + strconv.FormatInt(bh.producerID, 10) + "@" + addr
	pr := &connProducer{p: p, counters: counters, last: now}
	h, err := p.AddProducer(ctx, broker.ProducerSpec{
		Info: broker.ProducerInfo{
			Name: pname, Protocol: "kafka", Address: addr, ConnectedSince: now,
			AccessMode: "Shared", ClientVersion: clientIDFrom(ctx), Counters: counters,
			Metadata: map[string]string{"kafka.producer.id": strconv.FormatInt(bh.producerID, 10)},
		},
		Access:     broker.AccessShared,
		TopicEpoch: -1,
		// Fenced by a Pulsar ExclusiveWithFencing producer: unlisted, still
		// producing.
		OnFenced: func() { c.dropProducer(key, pr) },
	})
	if err != nil {
		c.log.DebugContext(ctx, "kafka: producer not listed", "topic", name.String(), "err", err)
		return
	}
	cp.mu.Lock()
	pr.h = h
	if cp.closed || cp.m[key] != nil || pr.fenced {
		cp.mu.Unlock()
		h.Close() // the connection closed, or a concurrent produce attached it
		if !cp.closed && !pr.fenced {
			c.noteProduced(ctx, p, records) // count these records on the winner
		}
		return
	}
	if cp.m == nil {
		cp.m = map[connProducerKey]*connProducer{}
	}
	cp.m[key] = pr
	pr.timer = time.AfterFunc(kafkaProducerIdle, func() { c.expireProducer(key, pr) })
	cp.mu.Unlock()
	counters.Add(int64(bh.recordCount), int64(len(records)))
}

// expireProducer detaches pr if it has not produced for kafkaProducerIdle,
// else looks again when it would have.
func (c *conn) expireProducer(key connProducerKey, pr *connProducer) {
	cp := &c.producers
	cp.mu.Lock()
	if cp.m[key] != pr {
		cp.mu.Unlock()
		return
	}
	if left := kafkaProducerIdle - time.Since(pr.last); left > 0 {
		pr.timer.Reset(left)
		cp.mu.Unlock()
		return
	}
	delete(cp.m, key)
	h := pr.h
	cp.mu.Unlock()
	h.Close()
}

// dropProducer detaches pr (fenced).
func (c *conn) dropProducer(key connProducerKey, pr *connProducer) {
	cp := &c.producers
	cp.mu.Lock()
	if cp.m[key] != pr {
		pr.fenced = true // not published yet: noteProduced closes it
		cp.mu.Unlock()
		return
	}
	delete(cp.m, key)
	pr.timer.Stop()
	h := pr.h
	cp.mu.Unlock()
	h.Close()
}

// closeProducers detaches every producer of c (the connection closed).
func (c *conn) closeProducers() {
	cp := &c.producers
	cp.mu.Lock()
	cp.closed = true
	m := cp.m
	cp.m = nil
	cp.mu.Unlock()
	for _, pr := range m {
		pr.timer.Stop()
		pr.h.Close()
	}
}
