package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is a workload: producers and consumers of both protocols on one
// partitioned topic, for a while, then a final read of everything.
type Config struct {
	// KafkaAddr and PulsarAddr are the broker's listeners (host:port).
	KafkaAddr, PulsarAddr string
	// Topic is the Kafka topic name (created with Partitions partitions if
	// missing). Use a fresh one: the final readers read it all.
	Topic      string
	Partitions int
	// Duration is how long producers run (default 10s).
	Duration time.Duration
	// Rate caps records per second over all producers (0: as fast as
	// acknowledgements come back, with a bounded number in flight).
	Rate int
	// KafkaProducers (franz-go, idempotent, acks=all, retrying forever)
	// and PulsarProducers (pulsar-client-go, one named producer per
	// partition, so the broker deduplicates resends). Default 1 each.
	KafkaProducers, PulsarProducers int
	// Consumers is how many of each kind run during the workload: Kafka
	// group members (one group, committing), Kafka assign-mode readers from
	// the start, and Pulsar consumers on their own subscriptions from the
	// earliest message (Exclusive and Failover alternately). Default 1.
	Consumers int
	// ValueBytes pads each value with 0 to ValueBytes random bytes of
	// filler, so that batches vary in size and ledgers roll over (default
	// 0: values are just their unique id).
	ValueBytes int
	// FinalTimeout bounds the final phase (default 2m).
	FinalTimeout time.Duration
	// BeforeFinal, if set, runs after the producers stopped and before the
	// final readers start (a fault injector stops and heals here).
	BeforeFinal func(context.Context) error
	// Compacted runs the workload on a compacted topic (cleanup.policy
	// compact, small ledgers): every record has a key of Keys (default
	// 64), and before the final phase every partition is compacted
	// through HTTPAddr's admin API (PUT .../compaction). Check it with
	// Options.Compacted.
	Compacted bool
	Keys      int
	// HTTPAddr is the broker's admin listener (host:port), for Compacted.
	HTTPAddr string
	Log      *slog.Logger
}

func (c *Config) defaults() {
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.KafkaProducers < 0 {
		c.KafkaProducers = 0
	}
	if c.PulsarProducers < 0 {
		c.PulsarProducers = 0
	}
	if c.Consumers <= 0 {
		c.Consumers = 1
	}
	if c.FinalTimeout <= 0 {
		c.FinalTimeout = 2 * time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Keys <= 0 {
		c.Keys = 64
	}
}

// keyOf is the key of a producer's n-th record ("" unless compacted).
func (c *Config) keyOf(n int) string {
	if !c.Compacted {
		return ""
	}
	return fmt.Sprintf("key-%d", rand.IntN(c.Keys))
}

// Run drives the workload and returns its history; the error is for a
// workload that could not start (no broker, no topic) or was cancelled.
// Anomalies are for Check to find.
func Run(ctx context.Context, cfg Config) (*History, error) {
	cfg.defaults()
	h := NewHistory(cfg.Topic)
	log := cfg.Log.With("topic", cfg.Topic)
	if err := createTopic(ctx, cfg); err != nil {
		return nil, err
	}
	plc, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + cfg.PulsarAddr,
		OperationTimeout: 30 * time.Second, ConnectionTimeout: 5 * time.Second, Logger: plog.DefaultNopLogger()})
	if err != nil {
		return nil, fmt.Errorf("verify: pulsar client: %w", err)
	}
	defer plc.Close()

	consumeCtx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	var consumers sync.WaitGroup
	for i := range cfg.Consumers {
		for _, f := range []func(context.Context, Config, *History, int) error{kafkaGroupMember, kafkaAssignReader} {
			consumers.Add(1)
			go func() {
				defer consumers.Done()
				if err := f(consumeCtx, cfg, h, i); err != nil && consumeCtx.Err() == nil {
					log.Warn("verify: consumer stopped", "err", err)
				}
			}()
		}
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			if err := pulsarConsumer(consumeCtx, cfg, plc, h, i); err != nil && consumeCtx.Err() == nil {
				log.Warn("verify: consumer stopped", "err", err)
			}
		}()
	}

	produceCtx, stopProducers := context.WithTimeout(ctx, cfg.Duration)
	defer stopProducers()
	var producers sync.WaitGroup
	perProducer := 0.0
	if n := cfg.KafkaProducers + cfg.PulsarProducers; cfg.Rate > 0 && n > 0 {
		perProducer = float64(cfg.Rate) / float64(n)
	}
	for i := range cfg.KafkaProducers {
		producers.Add(1)
		go func() {
			defer producers.Done()
			if err := kafkaProducer(produceCtx, cfg, h, i, perProducer); err != nil {
				log.Warn("verify: producer stopped", "err", err)
			}
		}()
	}
	for i := range cfg.PulsarProducers {
		producers.Add(1)
		go func() {
			defer producers.Done()
			if err := pulsarProducer(produceCtx, cfg, plc, h, i, perProducer); err != nil {
				log.Warn("verify: producer stopped", "err", err)
			}
		}()
	}
	producers.Wait()
	log.Info("verify: producers stopped", "writes", len(h.Writes))
	if err := ctx.Err(); err != nil {
		return h, err
	}
	if cfg.BeforeFinal != nil {
		if err := cfg.BeforeFinal(ctx); err != nil {
			return h, fmt.Errorf("verify: before final phase: %w", err)
		}
	}
	if cfg.Compacted {
		if err := compactAll(ctx, cfg); err != nil {
			return h, err
		}
		log.Info("verify: partitions compacted")
	}
	finalCtx, cancel := context.WithTimeout(ctx, cfg.FinalTimeout)
	defer cancel()
	ends, err := endOffsets(finalCtx, cfg)
	if err != nil {
		return h, err
	}
	log.Info("verify: final phase", "end_offsets", ends)
	var final sync.WaitGroup
	var kerr2, perr error
	final.Add(2)
	go func() { defer final.Done(); kerr2 = kafkaFinalReader(finalCtx, cfg, h, ends) }()
	go func() { defer final.Done(); perr = pulsarFinalReader(finalCtx, cfg, plc, h, ends) }()
	final.Wait()
	stopConsumers()
	consumers.Wait()
	if err := errors.Join(kerr2, perr); err != nil {
		log.Warn("verify: final readers did not reach the end", "err", err)
	}
	return h, ctx.Err()
}

// payload is a value's bytes: its unique id, then a space and filler.
func payload(id string, pad int) []byte {
	if pad <= 0 {
		return []byte(id)
	}
	b := make([]byte, len(id)+1+rand.IntN(pad+1))
	copy(b, id)
	b[len(id)] = ' '
	for i := len(id) + 1; i < len(b); i++ {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// idOf is the unique id a payload carries.
func idOf(b []byte) string {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func kafkaClient(cfg Config, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.KafkaAddr),
		kgo.FetchMaxWait(250 * time.Millisecond), kgo.RetryTimeout(time.Minute)}, opts...)...)
}

// retry calls f until it succeeds or ctx ends (the broker may be restarting).
func retry(ctx context.Context, f func(context.Context) error) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func createTopic(ctx context.Context, cfg Config) error {
	cl, err := kafkaClient(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return retry(cctx, func(ctx context.Context) error {
		var configs map[string]*string
		if cfg.Compacted {
			configs = compactedConfigs()
		}
		resp, err := adm.CreateTopic(ctx, int32(cfg.Partitions), 1, configs, cfg.Topic)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("verify: create topic %s: %w", cfg.Topic, err)
		}
		return nil
	})
}

func endOffsets(ctx context.Context, cfg Config) (map[int32]int64, error) {
	cl, err := kafkaClient(cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends := map[int32]int64{}
	err = retry(ctx, func(ctx context.Context) error {
		lo, err := adm.ListEndOffsets(ctx, cfg.Topic)
		if err == nil {
			err = lo.Error()
		}
		if err != nil {
			return err
		}
		lo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
		if len(ends) != cfg.Partitions {
			return fmt.Errorf("verify: %d partitions listed, want %d", len(ends), cfg.Partitions)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: end offsets: %w", err)
	}
	return ends, nil
}

// pacer spaces sends at rate per second (0: no pacing).
type pacer struct {
	every time.Duration
	next  time.Time
}

func newPacer(rate float64) *pacer {
	p := &pacer{next: time.Now()}
	if rate > 0 {
		p.every = time.Duration(float64(time.Second) / rate)
	}
	return p
}

func (p *pacer) wait(ctx context.Context) bool {
	if p.every > 0 {
		p.next = p.next.Add(p.every)
		if d := time.Until(p.next); d > 0 {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(d):
			}
		} else if d < -time.Second {
			p.next = time.Now() // do not burst after a stall
		}
	}
	return ctx.Err() == nil
}

func kafkaProducer(ctx context.Context, cfg Config, h *History, i int, rate float64) error {
	name := fmt.Sprintf("kafka-producer-%d", i)
	cl, err := kafkaClient(cfg, kgo.DefaultProduceTopic(cfg.Topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(2000), kgo.RecordRetries(1<<30), kgo.UnknownTopicRetries(-1))
	if err != nil {
		return err
	}
	defer cl.Close()
	var inflight sync.WaitGroup
	p := newPacer(rate)
	for n := 0; p.wait(ctx); n++ {
		value := fmt.Sprintf("k%d-%07d", i, n)
		key := cfg.keyOf(n)
		rec := &kgo.Record{Value: payload(value, cfg.ValueBytes), Partition: int32(n % cfg.Partitions)}
		if key != "" {
			rec.Key = []byte(key)
		}
		inflight.Add(1)
		// The produce context is not ctx: stopping must not abort records
		// already handed over (they stay in flight until flushed below).
		cl.Produce(context.WithoutCancel(ctx), rec, func(r *kgo.Record, err error) {
			defer inflight.Done()
			w := Write{Producer: name, Value: value, Key: key, Partition: r.Partition, Outcome: Acked, Offset: r.Offset}
			if err != nil {
				w.Outcome, w.Err = Unknown, err.Error()
			}
			h.Wrote(w)
		})
	}
	// Give in-flight records time to be acknowledged (the broker may be
	// restarting); what is left fails as unknown when the client closes.
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl.Flush(fctx)
	cl.Close()
	inflight.Wait()
	return nil
}

func pulsarProducer(ctx context.Context, cfg Config, plc pulsar.Client, h *History, i int, rate float64) error {
	name := fmt.Sprintf("pulsar-producer-%d", i)
	stamp := time.Now().UnixNano()
	ps := make([]pulsar.Producer, cfg.Partitions)
	for p := range ps {
		err := retry(ctx, func(context.Context) error {
			var err error
			// An explicit, stable name: the broker deduplicates a
			// reconnecting producer's resends by (name, sequence id).
			ps[p], err = plc.CreateProducer(pulsar.ProducerOptions{
				Topic: fmt.Sprintf("%s-partition-%d", cfg.Topic, p),
				Name:  fmt.Sprintf("verify-%s-%d-%d-%d", cfg.Topic, i, p, stamp),
				// Retry across broker restarts for up to a minute.
				SendTimeout: time.Minute, MaxPendingMessages: 1000,
				BatchingMaxPublishDelay: 2 * time.Millisecond,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("verify: pulsar producer: %w", err)
		}
	}
	pacer := newPacer(rate)
	for n := 0; pacer.wait(ctx); n++ {
		value := fmt.Sprintf("p%d-%07d", i, n)
		part := int32(n % cfg.Partitions)
		key := cfg.keyOf(n)
		ps[part].SendAsync(context.WithoutCancel(ctx), &pulsar.ProducerMessage{Key: key, Payload: payload(value, cfg.ValueBytes)},
			func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				w := Write{Producer: name, Value: value, Key: key, Partition: part, Outcome: Acked, Offset: -1}
				if err != nil {
					w.Outcome, w.Err = Unknown, err.Error()
				} else if id.LedgerID() >= 0 {
					w.ID = msgID(id)
				}
				// else: a resend the broker recognised as a duplicate of a
				// persisted message (its first receipt was lost in a
				// crash) is acknowledged as -1:-1, as Pulsar does: acked,
				// at no known position.
				h.Wrote(w)
			})
	}
	for _, p := range ps {
		p.FlushWithCtx(context.Background())
		p.Close() // fails what is still pending
	}
	return nil
}

func msgID(id pulsar.MessageID) string {
	return fmt.Sprintf("%d:%d:%d", id.LedgerID(), id.EntryID(), max(id.BatchIdx(), 0))
}

func polled(h *History, session string, fs kgo.Fetches) {
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		recs := make([]Record, 0, len(p.Records))
		for _, r := range p.Records {
			recs = append(recs, Record{Offset: r.Offset, Value: idOf(r.Value), Key: string(r.Key)})
		}
		h.Polled(session, p.Partition, recs)
	})
}

func kafkaGroupMember(ctx context.Context, cfg Config, h *History, i int) error {
	session := fmt.Sprintf("kafka-group-%d", i)
	h.Session(SessionInfo{Name: session})
	reset := func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		for _, p := range m[cfg.Topic] {
			h.Seeked(session, p, -1) // resumes at the committed offset
		}
	}
	cl, err := kafkaClient(cfg, kgo.ConsumerGroup("verify-"+cfg.Topic), kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(reset), kgo.OnPartitionsRevoked(reset), kgo.OnPartitionsLost(reset))
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		polled(h, session, fs)
		cl.AllowRebalance()
	}
	return nil
}

func kafkaAssignReader(ctx context.Context, cfg Config, h *History, i int) error {
	session := fmt.Sprintf("kafka-assign-%d", i)
	h.Session(SessionInfo{Name: session})
	parts := map[int32]kgo.Offset{}
	for p := range cfg.Partitions {
		parts[int32(p)] = kgo.NewOffset().AtStart()
		h.Seeked(session, int32(p), 0)
	}
	cl, err := kafkaClient(cfg, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: parts}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		polled(h, session, cl.PollFetches(ctx))
	}
	return nil
}

func pulsarConsumer(ctx context.Context, cfg Config, plc pulsar.Client, h *History, i int) error {
	typ, kind := pulsar.Exclusive, "exclusive"
	if i%2 == 1 {
		typ, kind = pulsar.Failover, "failover"
	}
	session := fmt.Sprintf("pulsar-%s-%d", kind, i)
	h.Session(SessionInfo{Name: session, Redelivers: true})
	var c pulsar.Consumer
	err := retry(ctx, func(context.Context) error {
		var err error
		c, err = plc.Subscribe(pulsar.ConsumerOptions{Topic: cfg.Topic, Type: typ,
			SubscriptionName:            fmt.Sprintf("verify-%s-%d", kind, i),
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	for p := range cfg.Partitions {
		h.Seeked(session, int32(p), 0) // a new subscription from the earliest message
	}
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		if m.Index() == nil {
			cfg.Log.Warn("verify: pulsar message without index", "id", m.ID().String())
		} else {
			h.Polled(session, m.ID().PartitionIdx(), []Record{{Offset: int64(*m.Index()), Value: idOf(m.Payload()), Key: m.Key(), ID: msgID(m.ID())}})
		}
		c.Ack(m)
	}
}

func kafkaFinalReader(ctx context.Context, cfg Config, h *History, ends map[int32]int64) error {
	const session = "kafka-final"
	h.Session(SessionInfo{Name: session, Final: true})
	parts := map[int32]kgo.Offset{}
	next := map[int32]int64{}
	for p, end := range ends {
		h.Seeked(session, p, 0)
		if end == 0 {
			h.ReachedEnd(session, p, 0)
			continue
		}
		parts[p] = kgo.NewOffset().AtStart()
	}
	if len(parts) == 0 {
		return nil
	}
	cl, err := kafkaClient(cfg, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: parts}))
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(parts) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("kafka final reader: %w at %v of %v", ctx.Err(), next, ends)
		}
		polled(h, session, fs)
		fs.EachRecord(func(r *kgo.Record) { next[r.Partition] = r.Offset + 1 })
		for p := range parts {
			if next[p] >= ends[p] {
				h.ReachedEnd(session, p, ends[p])
				delete(parts, p)
			}
		}
	}
	return nil
}

func pulsarFinalReader(ctx context.Context, cfg Config, plc pulsar.Client, h *History, ends map[int32]int64) error {
	const session = "pulsar-final"
	h.Session(SessionInfo{Name: session, Final: true})
	var wg sync.WaitGroup
	errs := make([]error, len(ends))
	for p, end := range ends {
		h.Seeked(session, p, 0)
		if end == 0 {
			h.ReachedEnd(session, p, 0)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r pulsar.Reader
			err := retry(ctx, func(context.Context) error {
				var err error
				r, err = plc.CreateReader(pulsar.ReaderOptions{Topic: fmt.Sprintf("%s-partition-%d", cfg.Topic, p),
					StartMessageID: pulsar.EarliestMessageID(), ReadCompacted: cfg.Compacted})
				return err
			})
			if err != nil {
				errs[p] = err
				return
			}
			defer r.Close()
			next := int64(0)
			for next < end {
				m, err := r.Next(ctx)
				if err != nil {
					errs[p] = fmt.Errorf("pulsar final reader partition %d: %w at %d of %d", p, err, next, end)
					return
				}
				if m.Index() == nil {
					continue
				}
				next = int64(*m.Index()) + 1
				rec := Record{Offset: next - 1, Value: idOf(m.Payload()), Key: m.Key(), ID: msgID(m.ID())}
				if cfg.Compacted {
					// Compacted batches arrive without their gaps: the
					// client's index of a message in one is not its offset.
					rec.Offset, rec.ID = -1, ""
				}
				h.Polled(session, p, []Record{rec})
			}
			h.ReachedEnd(session, p, end)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
