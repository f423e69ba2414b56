package cli

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/broker"
)

// perf: a load generator in the manner of pulsar-perf and
// kafka-producer-perf-test. Producers pace themselves to --rate and record
// each message's acknowledgement latency; consumers record end-to-end
// latency from a send time the producer wrote into the payload. Latencies
// go into HDR histograms (hdrhistogram-go, microseconds, 3 significant
// digits); a progress line every second shows the last second, the final
// summary the whole run.
//
// Payload layout (when --size >= 24): [8 send unix nanos][8 run id][8 magic]
// then filler, so consumers skip messages of other runs and of other
// producers.

const perfMagic = 0x6b6f7065726e696b // "kopernik"

type perfOpts struct {
	protocol    string
	topic       string
	partitions  int
	producers   int
	consumers   int
	rate        int
	size        int
	acks        string
	compression string
	duration    time.Duration
	count       int64
	group       string
	from        string
	idle        time.Duration
	linger      time.Duration
	maxPending  int
}

func perfCommand() *command {
	var o perfOpts
	common := func(fs *flag.FlagSet) {
		fs.StringVar(&o.protocol, "protocol", "kafka", "client: kafka or pulsar")
		fs.StringVar(&o.topic, "topic", "kopernik-perf", "`TOPIC` to use")
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (0: until -n)")
		fs.Int64Var(&o.count, "n", 0, "stop after N messages in all (0: until --duration)")
	}
	produceFlags := func(fs *flag.FlagSet) {
		fs.IntVar(&o.partitions, "partitions", 1, "partitions of the topic when perf creates it (it exists: kept as it is)")
		fs.IntVar(&o.producers, "producers", 1, "concurrent producers (one client each)")
		fs.IntVar(&o.rate, "rate", 0, "messages per second over all producers (0: as fast as acknowledged)")
		fs.IntVar(&o.size, "size", 1024, "message size in `BYTES`")
		fs.StringVar(&o.acks, "acks", "all", "Kafka acks: all, 1 or 0 (Pulsar: always acknowledged)")
		fs.StringVar(&o.compression, "compression", "none", "none, gzip, snappy, lz4 or zstd (Pulsar: none, lz4, zlib as gzip, zstd)")
		fs.DurationVar(&o.linger, "linger", 5*time.Millisecond, "Kafka linger / Pulsar batching delay")
		fs.IntVar(&o.maxPending, "max-pending", 0, "messages a producer keeps unacknowledged, then blocks (0: the client's default, franz-go 50000, pulsar-client-go 1000)")
	}
	consumeFlags := func(fs *flag.FlagSet) {
		fs.IntVar(&o.consumers, "consumers", 1, "concurrent consumers (Kafka: group members or partition readers; Pulsar: Shared consumers)")
		fs.StringVar(&o.group, "group", "", "Kafka group / Pulsar subscription, kept afterwards (none: Kafka reads partitions directly, Pulsar uses a subscription it deletes at the end)")
	}
	run := func(mode string) func(e *env, args []string) error {
		return func(e *env, args []string) error {
			if err := o.validate(mode); err != nil {
				return err
			}
			return runPerf(e, mode, o)
		}
	}
	return &command{name: "perf", summary: "load generator: produce, consume or end-to-end, with latency histograms", subs: []*command{
		{
			name: "produce", summary: "produce at a rate and measure acknowledgement latency",
			long: `Prints a progress line every second (stderr) and a summary with a latency histogram (stdout).

Example:
  kopernik perf produce --protocol kafka --size 1024 --duration 20s --partitions 4 --producers 2`,
			flags: func(fs *flag.FlagSet) { common(fs); produceFlags(fs) },
			run:   run("produce"),
		},
		{
			name: "consume", summary: "consume and measure throughput and latency from the send time",
			long: `Latency is receive time minus the send time perf produce wrote into the payload (other
messages: the record timestamp / publish time). Stops at -n, --duration or after --idle without
messages.

Example:
  kopernik perf consume --topic kopernik-perf --from earliest -n 1000000`,
			flags: func(fs *flag.FlagSet) {
				common(fs)
				consumeFlags(fs)
				fs.StringVar(&o.from, "from", "earliest", "start of a new group or of direct reads: earliest or latest")
				fs.DurationVar(&o.idle, "idle", 5*time.Second, "stop after this long without a message, once one arrived (0: never)")
			},
			run: run("consume"),
		},
		{
			name: "e2e", summary: "produce and consume together: acknowledgement and end-to-end latency",
			long: `Consumers start at the end of the topic before producers start; only this run's messages count.

Example:
  kopernik perf e2e --protocol pulsar --rate 10000 --duration 30s`,
			flags: func(fs *flag.FlagSet) { common(fs); produceFlags(fs); consumeFlags(fs) },
			run:   run("e2e"),
		},
	}}
}

func (o *perfOpts) validate(mode string) error {
	if err := oneOf("protocol", o.protocol, "kafka", "pulsar"); err != nil {
		return err
	}
	if o.duration <= 0 && o.count <= 0 {
		return usagef("give --duration or -n")
	}
	if mode != "consume" {
		if err := oneOf("acks", o.acks, "all", "1", "0"); err != nil {
			return err
		}
		if err := oneOf("compression", o.compression, "none", "gzip", "zlib", "snappy", "lz4", "zstd"); err != nil {
			return err
		}
		if o.protocol == "pulsar" && o.compression == "snappy" {
			return usagef("--compression snappy: Pulsar clients offer none, lz4, zlib (gzip), zstd")
		}
		if o.size < 1 || o.size > 16<<20 {
			return usagef("--size %d: want 1 to 16777216", o.size)
		}
		if o.producers < 1 || o.partitions < 1 || o.rate < 0 || o.maxPending < 0 {
			return usagef("--producers and --partitions must be 1 or more, --rate and --max-pending 0 or more")
		}
	}
	if mode != "produce" {
		if o.consumers < 1 {
			return usagef("--consumers must be 1 or more")
		}
		if mode == "consume" {
			if err := oneOf("from", o.from, "earliest", "latest"); err != nil {
				return err
			}
		}
	}
	return nil
}

// latencies is a total and an interval histogram behind one lock.
type latencies struct {
	mu       sync.Mutex
	total    *hdrhistogram.Histogram
	interval *hdrhistogram.Histogram
}

func newLatencies() *latencies {
	// 1 µs to 10 min, 3 significant digits.
	return &latencies{total: hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3),
		interval: hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)}
}

func (l *latencies) record(d time.Duration) {
	us := max(int64(d/time.Microsecond), 1)
	l.mu.Lock()
	l.total.RecordValue(min(us, l.total.HighestTrackableValue()))
	l.interval.RecordValue(min(us, l.interval.HighestTrackableValue()))
	l.mu.Unlock()
}

// take returns a copy of the interval histogram and resets it.
func (l *latencies) take() *hdrhistogram.Histogram {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.interval.Clone()
	l.interval.Reset()
	return h
}

// meter counts messages and bytes of one side (produced or consumed).
type meter struct {
	name     string
	msgs     atomic.Int64
	bytes    atomic.Int64
	errs     atomic.Int64
	lat      *latencies
	firstErr atomic.Pointer[error]
	last     atomic.Int64 // unix nanos of the last message counted
}

func newMeter(name string) *meter { return &meter{name: name, lat: newLatencies()} }

func (m *meter) ok(bytes int, lat time.Duration) {
	m.msgs.Add(1)
	m.account(bytes, lat)
}

// take counts one message unless limit were already counted.
func (m *meter) take(limit int64) bool {
	for {
		c := m.msgs.Load()
		if c >= limit {
			return false
		}
		if m.msgs.CompareAndSwap(c, c+1) {
			return true
		}
	}
}

// account adds a counted message's bytes and latency (< 0: unknown).
func (m *meter) account(bytes int, lat time.Duration) {
	m.bytes.Add(int64(bytes))
	m.last.Store(time.Now().UnixNano())
	if lat >= 0 {
		m.lat.record(lat)
	}
}

func (m *meter) fail(err error) {
	m.errs.Add(1)
	m.firstErr.CompareAndSwap(nil, &err)
}

func ms(us int64) float64 { return float64(us) / 1000 }

// progress prints one line a second until ctx ends.
func progress(ctx context.Context, w io.Writer, start time.Time, meters []*meter) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := make([][2]int64, len(meters))
	lastAt := start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			secs := now.Sub(lastAt).Seconds()
			lastAt = now
			var b strings.Builder
			fmt.Fprintf(&b, "%6.1fs", now.Sub(start).Seconds())
			for i, m := range meters {
				msgs, bytes := m.msgs.Load(), m.bytes.Load()
				h := m.lat.take()
				fmt.Fprintf(&b, "  %s %9.0f msg/s %8.2f MB/s p50 %7.2fms p99 %7.2fms p999 %7.2fms",
					m.name, float64(msgs-last[i][0])/secs, float64(bytes-last[i][1])/secs/1e6,
					ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99)), ms(h.ValueAtQuantile(99.9)))
				if n := m.errs.Load(); n > 0 {
					fmt.Fprintf(&b, " errors %d", n)
				}
				last[i] = [2]int64{msgs, bytes}
			}
			fmt.Fprintln(w, b.String())
		}
	}
}

// latencySummary is a histogram's figures in milliseconds.
type latencySummary struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	P9999 float64 `json:"p9999"`
	Max   float64 `json:"max"`
	// Histogram counts latencies per bucket: LeMs is the bucket's upper
	// bound (the last bucket: +Inf, written as -1).
	Histogram []bucket `json:"histogram"`
}

type bucket struct {
	LeMs  float64 `json:"leMs"`
	Count int64   `json:"count"`
}

var bucketBounds = []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}

func summarize(h *hdrhistogram.Histogram) latencySummary {
	s := latencySummary{Count: h.TotalCount(), Min: ms(h.Min()), Mean: h.Mean() / 1000, P50: ms(h.ValueAtQuantile(50)),
		P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)),
		P9999: ms(h.ValueAtQuantile(99.99)), Max: ms(h.Max())}
	counts := make([]int64, len(bucketBounds)+1)
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		i := 0
		for i < len(bucketBounds) && ms(bar.To) > bucketBounds[i] {
			i++
		}
		counts[i] += bar.Count
	}
	for i, c := range counts {
		le := -1.0
		if i < len(bucketBounds) {
			le = bucketBounds[i]
		}
		s.Histogram = append(s.Histogram, bucket{LeMs: le, Count: c})
	}
	return s
}

// perfSide is the summary of one side of a run.
type perfSide struct {
	Messages  int64          `json:"messages"`
	Bytes     int64          `json:"bytes"`
	Errors    int64          `json:"errors"`
	MsgPerSec float64        `json:"msgPerSec"`
	MBPerSec  float64        `json:"mbPerSec"`
	LatencyMs latencySummary `json:"latencyMs"`
	FirstErr  string         `json:"firstError,omitempty"`
}

type perfSummary struct {
	Mode        string    `json:"mode"`
	Protocol    string    `json:"protocol"`
	Topic       string    `json:"topic"`
	Partitions  int       `json:"partitions,omitempty"`
	Producers   int       `json:"producers,omitempty"`
	Consumers   int       `json:"consumers,omitempty"`
	Size        int       `json:"size,omitempty"`
	Rate        int       `json:"rate,omitempty"`
	Acks        string    `json:"acks,omitempty"`
	Compression string    `json:"compression,omitempty"`
	MaxPending  int       `json:"maxPending,omitempty"`
	Seconds     float64   `json:"seconds"`
	Produced    *perfSide `json:"produced,omitempty"`
	Consumed    *perfSide `json:"consumed,omitempty"`
}

// sideOf summarizes a side; its rates count from start to its last message
// (a consumer that waited --idle after it, or a producer's final flush,
// does not dilute them).
func sideOf(m *meter, start time.Time) *perfSide {
	s := &perfSide{Messages: m.msgs.Load(), Bytes: m.bytes.Load(), Errors: m.errs.Load(),
		LatencyMs: summarize(m.lat.total)}
	secs := time.Since(start).Seconds()
	if last := m.last.Load(); last > 0 {
		secs = time.Unix(0, last).Sub(start).Seconds()
	}
	if secs > 0 {
		s.MsgPerSec, s.MBPerSec = float64(s.Messages)/secs, float64(s.Bytes)/secs/1e6
	}
	if p := m.firstErr.Load(); p != nil {
		s.FirstErr = (*p).Error()
	}
	return s
}

func runPerf(e *env, mode string, o perfOpts) error {
	n, err := topicName(o.topic)
	if err != nil {
		return err
	}
	runID := rand.Uint64()
	var meters []*meter
	var prod, cons *meter
	if mode != "consume" {
		if err := ensureTopic(e, n, o.partitions); err != nil {
			return err
		}
		parts, err := e.partitionsOf(n)
		if err != nil {
			return err
		}
		o.partitions = max(parts, 1) // it may have existed with other partitions
		prod = newMeter("produced")
	}
	if mode != "produce" {
		cons = newMeter("consumed")
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	if o.duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}

	var consumersDone chan error
	var want atomic.Int64 // consumed messages to wait for (e2e: what was acknowledged)
	want.Store(math.MaxInt64)
	if cons != nil {
		if mode == "consume" && o.count > 0 {
			want.Store(o.count)
		}
		ready := make(chan error, 1)
		consumersDone = make(chan error, 1)
		cctx, ccancel := context.WithCancel(e.ctx)
		defer ccancel()
		go func() {
			consumersDone <- perfConsume(cctx, e, n, o, mode, runID, cons, &want, ready)
		}()
		if err := <-ready; err != nil {
			return err
		}
		if mode == "consume" {
			go func() { <-ctx.Done(); ccancel() }()
		} else {
			// e2e: producers end at ctx; consumers get what was
			// acknowledged, then a drain deadline.
			go func() {
				<-ctx.Done()
				select {
				case <-time.After(30 * time.Second):
				case <-cctx.Done():
				}
				ccancel()
			}()
		}
	}
	for _, m := range []*meter{prod, cons} {
		if m != nil {
			meters = append(meters, m)
		}
	}
	start := time.Now()
	pctx, pcancel := context.WithCancel(e.ctx)
	defer pcancel()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		progress(pctx, e.stderr, start, meters)
	}()

	var perr error
	if prod != nil {
		perr = perfProduce(ctx, e, n, o, runID, prod)
		if cons != nil {
			want.Store(prod.msgs.Load())
		}
	}
	if cons != nil {
		if err := <-consumersDone; err != nil && perr == nil {
			perr = err
		}
	}
	pcancel()
	<-progressDone // no progress line after the summary, nor after we return
	secs := time.Since(start).Seconds()
	sum := perfSummary{Mode: mode, Protocol: o.protocol, Topic: n.String(), Seconds: secs}
	if prod != nil {
		sum.Partitions, sum.Producers, sum.Size, sum.Rate, sum.Compression = o.partitions, o.producers, o.size, o.rate, o.compression
		sum.MaxPending = o.maxPending
		if o.protocol == "kafka" {
			sum.Acks = o.acks
		}
		sum.Produced = sideOf(prod, start)
	}
	if cons != nil {
		sum.Consumers = o.consumers
		sum.Consumed = sideOf(cons, start)
	}
	if err := writePerfSummary(e, sum); err != nil {
		return err
	}
	if perr != nil {
		return perr
	}
	if sum.Produced != nil && sum.Produced.Errors > 0 {
		return fmt.Errorf("%d messages failed: %s", sum.Produced.Errors, sum.Produced.FirstErr)
	}
	if mode == "e2e" && sum.Consumed.Messages < sum.Produced.Messages {
		return fmt.Errorf("consumed %d of %d acknowledged messages", sum.Consumed.Messages, sum.Produced.Messages)
	}
	return nil
}

// ensureTopic creates the topic with partitions unless it exists.
func ensureTopic(e *env, n broker.TopicName, partitions int) error {
	err := e.admin("PUT", restPath(n)+"/partitions", partitions, nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == 409 {
		return nil
	}
	return err
}

// payload builds one message: send time, run id and magic, then filler.
func payload(size int, runID uint64, filler []byte) []byte {
	b := make([]byte, size)
	copy(b, filler)
	if size >= 24 {
		binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint64(b[8:], runID)
		binary.BigEndian.PutUint64(b[16:], perfMagic)
	}
	return b
}

// sentAt reads a payload's send time if it is one of run's (run 0: any run).
func sentAt(b []byte, runID uint64) (time.Time, bool) {
	if len(b) < 24 || binary.BigEndian.Uint64(b[16:]) != perfMagic || (runID != 0 && binary.BigEndian.Uint64(b[8:]) != runID) {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))), true
}

// pacer spaces a producer's sends at rate per second (0: no pacing).
type pacer struct {
	start    time.Time
	interval time.Duration
	i        int64
}

func (p *pacer) wait(ctx context.Context) bool {
	if p.interval <= 0 {
		return ctx.Err() == nil
	}
	next := p.start.Add(time.Duration(p.i) * p.interval)
	p.i++
	if d := time.Until(next); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return ctx.Err() == nil
}

func perfProduce(ctx context.Context, e *env, n broker.TopicName, o perfOpts, runID uint64, m *meter) error {
	filler := make([]byte, o.size)
	for i := range filler {
		filler[i] = byte('a' + i%26)
	}
	var wg sync.WaitGroup
	errs := make(chan error, o.producers)
	start := time.Now()
	for i := range o.producers {
		share := int64(-1)
		if o.count > 0 {
			share = o.count / int64(o.producers)
			if int64(i) < o.count%int64(o.producers) {
				share++
			}
		}
		p := &pacer{start: start}
		if o.rate > 0 {
			p.interval = time.Duration(float64(time.Second) * float64(o.producers) / float64(o.rate))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if o.protocol == "pulsar" {
				err = perfProducePulsar(ctx, e, n, o, share, p, func() []byte { return payload(o.size, runID, filler) }, m)
			} else {
				err = perfProduceKafka(ctx, e, n, o, share, p, func() []byte { return payload(o.size, runID, filler) }, m)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

func kafkaCompression(c string) kgo.CompressionCodec {
	switch c {
	case "gzip", "zlib":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

func perfProduceKafka(ctx context.Context, e *env, n broker.TopicName, o perfOpts, share int64, p *pacer, next func() []byte, m *meter) error {
	opts, err := e.kafkaOpts()
	if err != nil {
		return err
	}
	opts = append(opts, kgo.ProducerBatchCompression(kafkaCompression(o.compression)), kgo.ProducerLinger(o.linger),
		kgo.RecordDeliveryTimeout(e.globals.timeout))
	if o.maxPending > 0 {
		opts = append(opts, kgo.MaxBufferedRecords(o.maxPending))
	}
	if o.size > 900<<10 {
		// A batch must hold one message; the client's default is ~1 MB.
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(o.size)+1024))
	}
	switch o.acks {
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	topic := kafkaName(n)
	for sent := int64(0); share < 0 || sent < share; sent++ {
		if !p.wait(ctx) {
			break
		}
		v := next()
		t0 := time.Now()
		cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: v, Timestamp: t0}, func(r *kgo.Record, err error) {
			if err != nil {
				m.fail(err)
				return
			}
			m.ok(len(r.Value), time.Since(t0))
		})
	}
	fctx, cancel := context.WithTimeout(context.Background(), e.globals.timeout)
	defer cancel()
	return cl.Flush(fctx)
}

func pulsarCompression(c string) pulsar.CompressionType {
	switch c {
	case "gzip", "zlib":
		return pulsar.ZLib
	case "lz4":
		return pulsar.LZ4
	case "zstd":
		return pulsar.ZSTD
	}
	return pulsar.NoCompression
}

func perfProducePulsar(ctx context.Context, e *env, n broker.TopicName, o perfOpts, share int64, p *pacer, next func() []byte, m *meter) error {
	pc, err := e.pulsarShared()
	if err != nil {
		return err
	}
	prod, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: n.String(), CompressionType: pulsarCompression(o.compression),
		BatchingMaxPublishDelay: o.linger, SendTimeout: e.globals.timeout, MaxPendingMessages: o.maxPending,
		BatchingMaxSize: uint(max(128<<10, o.size))})
	if err != nil {
		return fmt.Errorf("pulsar producer on %s: %w", n, err)
	}
	defer prod.Close()
	for sent := int64(0); share < 0 || sent < share; sent++ {
		if !p.wait(ctx) {
			break
		}
		v := next()
		t0 := time.Now()
		prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: v, EventTime: t0},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				if err != nil {
					m.fail(err)
					return
				}
				m.ok(len(v), time.Since(t0))
			})
	}
	fctx, cancel := context.WithTimeout(context.Background(), e.globals.timeout)
	defer cancel()
	return prod.FlushWithCtx(fctx)
}

// pulsarShared is e.pulsar for concurrent callers.
func (e *env) pulsarShared() (pulsar.Client, error) {
	e.pulsarMu.Lock()
	defer e.pulsarMu.Unlock()
	return e.pulsar()
}

// perfConsume runs the consumers until ctx ends or want messages arrived;
// it reports on ready once they are subscribed (e2e starts producing then).
func perfConsume(ctx context.Context, e *env, n broker.TopicName, o perfOpts, mode string, runID uint64, m *meter, want *atomic.Int64, ready chan<- error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var only uint64 // e2e counts this run's messages only
	if mode == "e2e" {
		only = runID
	}
	var idleAt atomic.Int64 // unix nanos of the last message; 0: none yet (a group may take seconds to join)
	got := func(b []byte, ts time.Time) {
		at, ok := sentAt(b, only)
		if !ok {
			if only != 0 {
				return
			}
			at = ts
		}
		if !m.take(want.Load()) {
			cancel()
			return
		}
		idleAt.Store(time.Now().UnixNano())
		lat := time.Duration(-1)
		if !at.IsZero() {
			lat = time.Since(at)
		}
		m.account(len(b), lat)
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if m.msgs.Load() >= want.Load() {
					cancel()
				}
				if last := idleAt.Load(); mode == "consume" && o.idle > 0 && last > 0 && time.Since(time.Unix(0, last)) > o.idle {
					cancel()
				}
			}
		}
	}()
	if o.protocol == "pulsar" {
		return perfConsumePulsar(ctx, e, n, o, mode, got, ready)
	}
	return perfConsumeKafka(ctx, e, n, o, mode, got, ready)
}

func perfConsumeKafka(ctx context.Context, e *env, n broker.TopicName, o perfOpts, mode string, got func([]byte, time.Time), ready chan<- error) error {
	opts, err := e.kafkaOpts()
	if err != nil {
		ready <- err
		return err
	}
	topic := kafkaName(n)
	opts = append(opts, kgo.FetchMaxWait(100*time.Millisecond), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	var perClient [][]kgo.Opt
	if o.group != "" {
		// e2e: a group joins asynchronously, so it starts at the
		// beginning and counts this run's messages only (never misses
		// one produced before it joined).
		reset := kgo.NewOffset().AtStart()
		if o.from == "latest" && mode == "consume" {
			reset = kgo.NewOffset().AtEnd()
		}
		for range o.consumers {
			perClient = append(perClient, append(append([]kgo.Opt{}, opts...), kgo.ConsumerGroup(o.group),
				kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(reset)))
		}
	} else {
		starts, offs, err := e.offsets(ctx, topic)
		if err != nil {
			ready <- err
			return err
		}
		if o.from == "earliest" && mode == "consume" {
			offs = starts
		}
		assign := make([]map[int32]kgo.Offset, o.consumers)
		for i, lo := range offs.Offsets().Sorted() {
			if assign[i%o.consumers] == nil {
				assign[i%o.consumers] = map[int32]kgo.Offset{}
			}
			assign[i%o.consumers][lo.Partition] = kgo.NewOffset().At(lo.At)
		}
		for _, a := range assign {
			if a != nil {
				perClient = append(perClient, append(append([]kgo.Opt{}, opts...),
					kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: a})))
			}
		}
	}
	var clients []*kgo.Client
	for _, co := range perClient {
		cl, err := kgo.NewClient(co...)
		if err != nil {
			for _, c := range clients {
				c.Close()
			}
			ready <- err
			return err
		}
		clients = append(clients, cl)
	}
	ready <- nil
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Close()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
					errs <- err
					return
				}
				fs.EachRecord(func(r *kgo.Record) { got(r.Value, r.Timestamp) })
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func perfConsumePulsar(ctx context.Context, e *env, n broker.TopicName, o perfOpts, mode string, got func([]byte, time.Time), ready chan<- error) error {
	pc, err := e.pulsarShared()
	if err != nil {
		ready <- err
		return err
	}
	sub := o.group
	if sub == "" {
		sub = fmt.Sprintf("kopernik-perf-%d", time.Now().UnixNano())
	}
	pos := pulsar.SubscriptionPositionEarliest
	if o.from == "latest" || mode == "e2e" {
		pos = pulsar.SubscriptionPositionLatest
	}
	var consumers []pulsar.Consumer
	for range o.consumers {
		c, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: n.String(), SubscriptionName: sub, Type: pulsar.Shared,
			SubscriptionInitialPosition: pos, ReceiverQueueSize: 2000})
		if err != nil {
			for _, c := range consumers {
				c.Close()
			}
			err = fmt.Errorf("pulsar subscription %s on %s: %w", sub, n, err)
			ready <- err
			return err
		}
		consumers = append(consumers, c)
	}
	ready <- nil
	var wg sync.WaitGroup
	for _, c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for {
				msg, err := c.Receive(ctx)
				if err != nil {
					return
				}
				got(msg.Payload(), msg.PublishTime())
				c.Ack(msg)
			}
		}()
	}
	wg.Wait()
	if o.group == "" {
		// A subscription perf made up for itself is removed again.
		e.admin("DELETE", restPath(n)+"/subscription/"+sub+"?force=true", nil, nil)
	}
	return nil
}

func writePerfSummary(e *env, s perfSummary) error {
	if e.json() {
		return writeJSON(e.stdout, s)
	}
	w := e.stdout
	fmt.Fprintf(w, "perf %s: %s, topic %s", s.Mode, s.Protocol, s.Topic)
	if s.Produced != nil {
		fmt.Fprintf(w, ", %d partitions, %d producers, %d-byte messages, rate %s, compression %s",
			s.Partitions, s.Producers, s.Size, rateText(s.Rate), s.Compression)
		if s.Acks != "" {
			fmt.Fprintf(w, ", acks %s", s.Acks)
		}
		if s.MaxPending > 0 {
			fmt.Fprintf(w, ", max pending %d", s.MaxPending)
		}
	}
	if s.Consumed != nil {
		fmt.Fprintf(w, ", %d consumers", s.Consumers)
	}
	fmt.Fprintf(w, "\nduration %.2fs\n", s.Seconds)
	for _, side := range []struct {
		name, lat string
		s         *perfSide
	}{{"produced", "acknowledgement", s.Produced}, {"consumed", consumedLatency(s.Mode), s.Consumed}} {
		if side.s == nil {
			continue
		}
		p := side.s
		fmt.Fprintf(w, "\n%s: %d messages, %d bytes, %d errors: %.0f msg/s, %.2f MB/s\n",
			side.name, p.Messages, p.Bytes, p.Errors, p.MsgPerSec, p.MBPerSec)
		l := p.LatencyMs
		fmt.Fprintf(w, "%s latency (ms): min %.3f  mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  p99.99 %.3f  max %.3f\n",
			side.lat, l.Min, l.Mean, l.P50, l.P90, l.P99, l.P999, l.P9999, l.Max)
		writeHistogram(w, l)
	}
	return nil
}

// consumedLatency names what a consumer's latency measures: in e2e the
// run's own messages; in consume whatever the topic held, so the time since
// each was sent.
func consumedLatency(mode string) string {
	if mode == "e2e" {
		return "end-to-end"
	}
	return "send-to-receive"
}

func rateText(r int) string {
	if r == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d msg/s", r)
}

func writeHistogram(w io.Writer, l latencySummary) {
	if l.Count == 0 {
		return
	}
	var peak int64
	for _, b := range l.Histogram {
		peak = max(peak, b.Count)
	}
	lo := "0"
	fmt.Fprintln(w, "  latency (ms)        count   share")
	for _, b := range l.Histogram {
		hi := "inf"
		if b.LeMs >= 0 {
			hi = fmt.Sprint(b.LeMs)
		}
		if b.Count > 0 {
			bar := strings.Repeat("#", int(math.Ceil(float64(b.Count)*40/float64(peak))))
			fmt.Fprintf(w, "  %6s - %-6s %10d  %5.1f%%  %s\n", lo, hi, b.Count, 100*float64(b.Count)/float64(l.Count), bar)
		}
		lo = hi
	}
}
