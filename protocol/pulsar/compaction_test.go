package pulsar

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/kopernik-io/kopernik/broker"
)

// readAll reads with a new reader from the earliest message until
// HasNext says there is no more (GET_LAST_MESSAGE_ID must agree with what
// the reader is sent, or this hangs): key -> payloads in order.
func readAll(t *testing.T, c pulsar.Client, topic string, compacted bool) ([]pulsar.Message, map[string]string) {
	t.Helper()
	ctx := ctxT(t)
	r, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID(), ReadCompacted: compacted})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var msgs []pulsar.Message
	last := map[string]string{}
	for r.HasNext() {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(msgs), err)
		}
		msgs = append(msgs, m)
		last[m.Key()] = string(m.Payload())
	}
	return msgs, last
}

// TestReadCompactedReader: pulsar-client-go readers with ReadCompacted see
// the compacted view (the latest message per key, batches rewritten) and
// then the raw tail; a plain reader still sees everything; HasNext ends.
func TestReadCompactedReader(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	ctx := ctxT(t)
	topic := "persistent://public/default/" + newTopic("compacted")
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := map[string]string{}
	const n, keys = 300, 20
	for i := range n {
		k := fmt.Sprintf("k%02d", (i*7)%keys)
		v := fmt.Sprintf("%s-v%d", k, i)
		want[k] = v
		p.SendAsync(ctx, &pulsar.ProducerMessage{Key: k, Payload: []byte(v)}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	name, err := broker.ParseTopicName(topic, "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	part, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := part.Compact(ctx, true)
	if err != nil || !res.Compacted || res.Cleaned != n {
		t.Fatalf("compaction: %+v, %v", res, err)
	}

	msgs, got := readAll(t, c, topic, true)
	if len(msgs) != keys || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("compacted reader: %d messages, table %v, want %d keys %v", len(msgs), got, keys, want)
	}
	// The tail after the view.
	for i := range 5 {
		k := fmt.Sprintf("k%02d", i)
		want[k] = fmt.Sprintf("%s-tail%d", k, i)
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Key: k, Payload: []byte(want[k])}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, got = readAll(t, c, topic, true)
	if len(msgs) != keys+5 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("compacted reader with a tail: %d messages, table %v", len(msgs), got)
	}
	if msgs, _ = readAll(t, c, topic, false); len(msgs) != n+5 {
		t.Fatalf("plain reader: %d messages, want %d", len(msgs), n+5)
	}
	// The last entry rewritten (two updates of one key in one batch): the
	// last message id a compacted reader is told must be the one it gets.
	for i := range 2 {
		want["k19"] = fmt.Sprintf("k19-end%d", i)
		p.SendAsync(ctx, &pulsar.ProducerMessage{Key: "k19", Payload: []byte(want["k19"])}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if res, err = part.Compact(ctx, true); err != nil || !res.Compacted || res.Cleaned != n+7 {
		t.Fatalf("second compaction: %+v, %v", res, err)
	}
	msgs, got = readAll(t, c, topic, true)
	if len(msgs) != keys || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("compacted reader after the second compaction: %d messages, table %v, want %v", len(msgs), got, want)
	}
	st := part.CompactionStatus()
	if st.State != broker.CompactionSuccess || st.Cleaned != n+7 {
		t.Fatalf("status %+v", st)
	}
}

// TestReadCompactedAfterRelease: on a topic with cleanup.policy=compact the
// raw ledgers below the cleaned point are released after compaction; a
// readCompacted reader from the earliest message still reads the view's
// entries in them, then the raw tail.
func TestReadCompactedAfterRelease(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	ctx := ctxT(t)
	topic := "persistent://public/default/" + newTopic("released")
	name, err := broker.ParseTopicName(topic, "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	compactOnly, segment := broker.CleanupCompact, int64(2048)
	if err := s.broker.CreateTopic(ctx, name, 0, broker.Policies{CleanupPolicy: &compactOnly, SegmentBytes: &segment}); err != nil {
		t.Fatal(err)
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := map[string]string{}
	for i := range 300 {
		// Keys k10-k39 only early on: after the release only the view
		// holds them.
		k := fmt.Sprintf("k%02d", (i*7)%40)
		if i >= 100 {
			k = fmt.Sprintf("k%02d", (i*7)%10)
		}
		want[k] = fmt.Sprintf("%s-v%d-%s", k, i, make([]byte, 20))
		p.SendAsync(ctx, &pulsar.ProducerMessage{Key: k, Payload: []byte(want[k])}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	part, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	before := part.Stats()
	if _, err := part.Compact(ctx, false); err != nil {
		t.Fatal(err)
	}
	after := part.Stats()
	if after.FirstIndex == 0 || after.Bytes >= before.Bytes {
		t.Fatalf("nothing released: first index %d, %d bytes (before %d)", after.FirstIndex, after.Bytes, before.Bytes)
	}
	msgs, got := readAll(t, c, topic, true)
	if fmt.Sprint(got) != fmt.Sprint(want) || len(msgs) >= 300 || int64(len(msgs)) <= after.NextIndex-after.FirstIndex {
		t.Fatalf("compacted reader after release: %d messages, table %v, want %v", len(msgs), got, want)
	}
	// A plain reader sees only what the raw log still holds.
	if msgs, _ := readAll(t, c, topic, false); int64(len(msgs)) != after.NextIndex-after.FirstIndex {
		t.Fatalf("plain reader: %d messages, raw log holds %d", len(msgs), after.NextIndex-after.FirstIndex)
	}
	// A durable readCompacted subscription created now, from the earliest
	// message, gets the same table.
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "late", Type: pulsar.Failover, ReadCompacted: true,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	table := map[string]string{}
	for fmt.Sprint(table) != fmt.Sprint(want) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := cons.Receive(rctx)
		cancel()
		if err != nil {
			t.Fatalf("durable readCompacted subscription after release: %d keys of %d (%v), then %v", len(table), len(want), table, err)
		}
		table[m.Key()] = string(m.Payload())
		if err := cons.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	// Everything acknowledged: after a reconnect nothing comes again.
	sub, err := part.Subscription(ctx, "late", false, broker.InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); sub.Cursor().Backlog() != 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // acks arrive grouped
	}
	cons.Close()
	cons, err = c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "late", Type: pulsar.Failover, ReadCompacted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if m, err := cons.Receive(rctx); err == nil {
		t.Fatalf("after acknowledging everything and reconnecting: sent %s=%q again", m.Key(), m.Payload())
	}
}

// TestReadCompactedSharedRefused: as Pulsar, readCompacted is for Exclusive
// and Failover subscriptions (and readers) only.
func TestReadCompactedSharedRefused(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := "persistent://public/default/" + newTopic("shared-compacted")
	if _, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared, ReadCompacted: true}); err == nil {
		t.Fatal("readCompacted Shared subscription accepted")
	}
	// A durable Failover subscription reads the view, then the tail.
	ctx := ctxT(t)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := map[string]string{}
	for i := range 50 {
		k := fmt.Sprintf("k%d", i%5)
		want[k] = fmt.Sprintf("v%d", i)
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Key: k, Payload: []byte(want[k])}); err != nil {
			t.Fatal(err)
		}
	}
	name, _ := broker.ParseTopicName(topic, "public", "default")
	part, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Compact(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Key: "k0", Payload: []byte("tail")}); err != nil {
		t.Fatal(err)
	}
	want["k0"] = "tail"
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "f", Type: pulsar.Failover, ReadCompacted: true,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]string{}
	for n := 0; n < 6; n++ {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d: %v", n, err)
		}
		got[m.Key()] = string(m.Payload())
		cons.Ack(m)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("failover readCompacted: %v, want %v", got, want)
	}
}

// TestReadCompactedIndexes: a pulsar-client-go readCompacted reader gets
// every kept message of a batch compaction rewrote with gaps at its raw
// message id (ledger, entry, batch index) with its exact Message.Index()
// (the Kafka offset): the broker sends such a batch at its full span with
// the gaps marked acknowledged in the ack set, which the client skips.
func TestReadCompactedIndexes(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	ctx := ctxT(t)
	topic := "persistent://public/default/" + newTopic("indexes")
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n, keys = 120, 15
	for i := range n {
		k := fmt.Sprintf("k%02d", (i*7)%keys)
		p.SendAsync(ctx, &pulsar.ProducerMessage{Key: k, Payload: []byte(fmt.Sprintf("%s-v%d", k, i))}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	type ident struct {
		ledger, entry int64
		batch         int32
		index         uint64
	}
	identOf := func(m pulsar.Message) ident {
		id := m.ID()
		if m.Index() == nil {
			t.Fatalf("message %q without an index", m.Payload())
		}
		return ident{id.LedgerID(), id.EntryID(), id.BatchIdx(), *m.Index()}
	}
	raw := map[string]ident{}
	msgs, _ := readAll(t, c, topic, false)
	for _, m := range msgs {
		raw[string(m.Payload())] = identOf(m)
	}
	if len(raw) != n {
		t.Fatalf("plain reader: %d messages, want %d", len(raw), n)
	}
	name, _ := broker.ParseTopicName(topic, "public", "default")
	part, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := part.Compact(ctx, true); err != nil || !res.Compacted {
		t.Fatalf("compaction: %+v, %v", res, err)
	}
	msgs, _ = readAll(t, c, topic, true)
	if len(msgs) != keys {
		t.Fatalf("compacted reader: %d messages, want %d", len(msgs), keys)
	}
	gaps := 0
	perEntry := map[[2]int64]int32{} // kept messages seen so far per entry
	for _, m := range msgs {
		got, want := identOf(m), raw[string(m.Payload())]
		if got != want {
			t.Errorf("%s: compacted reader got id %d:%d:%d index %d, the raw message is %d:%d:%d index %d",
				m.Payload(), got.ledger, got.entry, got.batch, got.index, want.ledger, want.entry, want.batch, want.index)
		}
		e := [2]int64{got.ledger, got.entry}
		if got.batch != perEntry[e] {
			gaps++ // a kept message after a gap in its batch
		}
		perEntry[e]++
	}
	if gaps == 0 {
		t.Fatal("no compacted batch with a gap before a kept message: the test checks nothing")
	}
}

// TestReadCompactedDurableIndividualAcks: a durable readCompacted
// subscription acknowledging each message on its own (pulsar-client-go's
// Ack, Failover) ends with no backlog: the raw entries compaction removed,
// which it is never sent, are acknowledged with the kept ones around them,
// so the raw ledgers they fill are released after the next compaction of
// a cleanup.policy=compact topic.
func TestReadCompactedDurableIndividualAcks(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	ctx := ctxT(t)
	topic := "persistent://public/default/" + newTopic("durable-acks")
	name, _ := broker.ParseTopicName(topic, "public", "default")
	compactOnly, segment := broker.CleanupCompact, int64(2048)
	if err := s.broker.CreateTopic(ctx, name, 0, broker.Policies{CleanupPolicy: &compactOnly, SegmentBytes: &segment}); err != nil {
		t.Fatal(err)
	}
	// The subscription first, so that it holds the raw ledgers; its
	// consumer comes after the compaction.
	part, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := part.Subscription(ctx, "table", true, broker.InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n, keys = 200, 10
	want := map[string]string{}
	for i := range n {
		k := fmt.Sprintf("k%d", (i*3)%keys)
		want[k] = fmt.Sprintf("%s-v%d-%s", k, i, make([]byte, 30))
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Key: k, Payload: []byte(want[k])}); err != nil {
			t.Fatal(err)
		}
	}
	before := part.Stats()
	if res, err := part.Compact(ctx, true); err != nil || !res.Compacted {
		t.Fatalf("compaction: %+v, %v", res, err)
	}
	if after := part.Stats(); after.FirstIndex != before.FirstIndex {
		t.Fatalf("raw ledgers released while the subscription had consumed nothing: first index %d", after.FirstIndex)
	}
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "table", Type: pulsar.Failover, ReadCompacted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]string{}
	for range keys {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[m.Key()] = string(m.Payload())
		if err := cons.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("readCompacted subscription read %v, want %v", got, want)
	}
	var backlog int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// Acks reach the broker grouped (every 100 ms).
		if backlog = sub.Cursor().Backlog(); backlog == 0 || time.Now().After(deadline) {
			break
		}
	}
	if backlog != 0 {
		t.Fatalf("backlog %d after acknowledging every message the subscription was sent (%d raw, %d kept)", backlog, n, keys)
	}
	// The next compaction releases the raw ledgers the subscription no
	// longer holds (all sealed ones: everything is below the cleaned point).
	if _, err := part.Compact(ctx, true); err != nil {
		t.Fatal(err)
	}
	if after := part.Stats(); after.FirstIndex == before.FirstIndex || after.Bytes >= before.Bytes {
		t.Fatalf("raw ledgers not released: first index %d (was %d), %d bytes (were %d)", after.FirstIndex, before.FirstIndex, after.Bytes, before.Bytes)
	}
}

// TestReadCompactedBatchIndexAcks: a durable readCompacted subscription
// with batch-index acknowledgements acknowledges some messages of batches
// compaction rewrote with gaps; after it reconnects it is sent exactly the
// others. (Its batches hold only the kept messages, numbered
// consecutively: the broker maps those batch indexes to the raw batch's.)
func TestReadCompactedBatchIndexAcks(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	ctx := ctxT(t)
	topic := "persistent://public/default/" + newTopic("batch-acks")
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n, keys = 120, 15
	for i := range n {
		k := fmt.Sprintf("k%02d", (i*7)%keys)
		p.SendAsync(ctx, &pulsar.ProducerMessage{Key: k, Payload: []byte(fmt.Sprintf("%s-v%d", k, i))}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	name, _ := broker.ParseTopicName(topic, "public", "default")
	part, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := part.Compact(ctx, true); err != nil || !res.Compacted {
		t.Fatalf("compaction: %+v, %v", res, err)
	}
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "t", Type: pulsar.Failover, ReadCompacted: true,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, EnableBatchIndexAcknowledgment: true, AckWithResponse: true}
	cons, err := c.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	unacked := map[string]bool{}
	for i := range keys {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := cons.Ack(m); err != nil {
				t.Fatal(err)
			}
		} else {
			unacked[string(m.Payload())] = true
		}
	}
	cons.Close()
	cons, err = c.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]bool{}
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := cons.Receive(rctx)
		cancel()
		if err != nil {
			break // nothing more within a second
		}
		got[string(m.Payload())] = true
	}
	if fmt.Sprint(got) != fmt.Sprint(unacked) {
		t.Fatalf("after reconnecting: sent %v, want the unacknowledged %v", got, unacked)
	}
}

// TestReadCompactedReleasedOutOfOrderAcks: a durable readCompacted
// subscription created after compaction released the raw ledgers reads the
// view's entries there, then the raw log; it acknowledges every raw message
// but only some of the view's, and reconnects: every message it did not
// acknowledge comes again (none of the view's is skipped because a later
// one was acknowledged first). Once it acknowledges everything, its
// mark-delete position leaves the released ledgers and nothing comes again.
func TestReadCompactedReleasedOutOfOrderAcks(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	ctx := ctxT(t)
	topic := "persistent://public/default/" + newTopic("released-acks")
	name, err := broker.ParseTopicName(topic, "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	compactOnly, segment := broker.CleanupCompact, int64(2048)
	if err := s.broker.CreateTopic(ctx, name, 0, broker.Policies{CleanupPolicy: &compactOnly, SegmentBytes: &segment}); err != nil {
		t.Fatal(err)
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 5, BatchingMaxPublishDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := map[string]string{}
	for i := range 300 {
		// Keys k10-k39 only early on: after the release only the view
		// holds them.
		k := fmt.Sprintf("k%02d", (i*7)%40)
		if i >= 100 {
			k = fmt.Sprintf("k%02d", (i*7)%10)
		}
		want[k] = fmt.Sprintf("%s-v%d-%s", k, i, make([]byte, 20))
		p.SendAsync(ctx, &pulsar.ProducerMessage{Key: k, Payload: []byte(want[k])}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	part, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Compact(ctx, false); err != nil {
		t.Fatal(err)
	}
	firstLedger := part.Stats().Ledgers[0].LedgerID
	if part.Stats().FirstIndex == 0 {
		t.Fatal("nothing released")
	}
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "late", Type: pulsar.Failover, ReadCompacted: true,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, AckWithResponse: true}
	cons, err := c.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]string{}
	unacked := map[string]bool{} // payloads not acknowledged
	released, i := 0, 0
	for fmt.Sprint(table) != fmt.Sprint(want) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := cons.Receive(rctx)
		cancel()
		if err != nil {
			t.Fatalf("%d keys of %d (%v), then %v", len(table), len(want), table, err)
		}
		table[m.Key()] = string(m.Payload())
		if m.ID().LedgerID() >= firstLedger || i%3 == 0 {
			if err := cons.Ack(m); err != nil {
				t.Fatal(err)
			}
		} else {
			unacked[string(m.Payload())] = true
		}
		if m.ID().LedgerID() < firstLedger {
			released++
			i++
		}
	}
	if released < 10 || len(unacked) == 0 {
		t.Fatalf("%d messages from released ledgers, %d unacknowledged: the test needs both", released, len(unacked))
	}
	cons.Close()
	cons, err = c.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]bool{}
	var again []pulsar.Message
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := cons.Receive(rctx)
		cancel()
		if err != nil {
			break // nothing more within a second
		}
		got[string(m.Payload())] = true
		again = append(again, m)
	}
	for v := range unacked {
		if !got[v] {
			t.Errorf("after reconnecting: %.8q... (unacknowledged) not sent again", v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, m := range again {
		if err := cons.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := part.Subscription(ctx, "late", false, broker.InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	if md := sub.Cursor().MarkDeletePosition(); md.LedgerID < firstLedger {
		t.Fatalf("everything acknowledged, mark-delete position %v still in the released ledgers (first retained %d)", md, firstLedger)
	}
	cons.Close()
	cons, err = c.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if m, err := cons.Receive(rctx); err == nil {
		t.Fatalf("after acknowledging everything and reconnecting: sent %s=%.8q... again", m.Key(), m.Payload())
	}
}

// TestReadCompactedRawBatchAckedAfterCompaction: a durable readCompacted
// subscription with batch-index acknowledgements receives a Pulsar batch
// raw, then compaction rewrites it (a superseded message removed), then
// it acknowledges one message of the raw batch: that acknowledgement
// numbers the raw batch's messages, not the view's, so after a reconnect
// exactly the kept messages it did not acknowledge come again (none of
// them taken as acknowledged).
func TestReadCompactedRawBatchAckedAfterCompaction(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	ctx := ctxT(t)
	topic := "persistent://public/default/" + newTopic("raw-then-view")
	opts := func(sub string) pulsar.ConsumerOptions {
		return pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub, Type: pulsar.Failover, ReadCompacted: true,
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, EnableBatchIndexAcknowledgment: true, AckWithResponse: true}
	}
	// Both subscriptions exist before the batch, so that they hold it.
	for _, sub := range []string{"ack-a", "ack-b"} {
		cons, err := c.Subscribe(opts(sub))
		if err != nil {
			t.Fatal(err)
		}
		cons.Close()
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 3, BatchingMaxPublishDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, kv := range [][2]string{{"k1", "a"}, {"k2", "b"}, {"k1", "c"}} {
		p.SendAsync(ctx, &pulsar.ProducerMessage{Key: kv[0], Payload: []byte(kv[1])}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	name, _ := broker.ParseTopicName(topic, "public", "default")
	part, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if st := part.Stats(); st.Entries != 1 {
		t.Fatalf("%d entries, want the 3 messages in one batch", st.Entries)
	}
	var conss []pulsar.Consumer
	var received [][]pulsar.Message
	for _, sub := range []string{"ack-a", "ack-b"} {
		cons, err := c.Subscribe(opts(sub))
		if err != nil {
			t.Fatal(err)
		}
		conss = append(conss, cons)
		received = append(received, receive(t, cons, 3, false))
		if got := payloads(received[len(received)-1]); fmt.Sprint(got) != "[a b c]" {
			t.Fatalf("%s received %v before compaction, want the raw batch [a b c]", sub, got)
		}
	}
	if res, err := part.Compact(ctx, true); err != nil || !res.Compacted || res.RecordsOut != 2 {
		t.Fatalf("compaction: %+v, %v (want b and c kept)", res, err)
	}
	// a is gone (superseded by c); what was not acknowledged comes again.
	for i, want := range []string{"[b c]", "[c]"} {
		sub := []string{"ack-a", "ack-b"}[i]
		if err := conss[i].Ack(received[i][i]); err != nil { // ack-a acks a, ack-b acks b
			t.Fatal(err)
		}
		conss[i].Close()
		cons, err := c.Subscribe(opts(sub))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		var got []string
		for {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			m, err := cons.Receive(rctx)
			cancel()
			if err != nil {
				break // nothing more within a second
			}
			got = append(got, string(m.Payload()))
		}
		if fmt.Sprint(got) != want {
			t.Errorf("%s: after acknowledging %s of the raw batch and reconnecting, sent %v, want %v", sub, received[i][i].Payload(), got, want)
		}
	}
}
