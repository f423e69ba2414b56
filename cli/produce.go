package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/router"
)

// produce, consume and peek: Kafka (franz-go) or Pulsar (pulsar-client-go)
// clients on the same topics, as kafka-console-producer/-consumer, rpk
// topic produce/consume and pulsar-client produce/consume do.

// record is what produce reads from a JSON line.
type record struct {
	Key     *string           `json:"key"`
	Value   json.RawMessage   `json:"value"`
	Headers map[string]string `json:"headers"`
}

// message is one message as consume and peek print it: the Kafka view
// (offset, key, headers, timestamp) and/or the Pulsar view (message id,
// properties, event and publish time), by the protocol that read it.
type message struct {
	Topic       string            `json:"topic"`
	Partition   int32             `json:"partition"`
	Offset      *int64            `json:"offset,omitempty"`
	MessageID   string            `json:"messageId,omitempty"`
	Key         string            `json:"key,omitempty"`
	Value       string            `json:"value"`
	ValueBase64 string            `json:"valueBase64,omitempty"`
	Null        bool              `json:"null,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Timestamp   *time.Time        `json:"timestamp,omitempty"`
	EventTime   *time.Time        `json:"eventTime,omitempty"`
	PublishTime *time.Time        `json:"publishTime,omitempty"`
	// raw is the value's bytes (templates get .Raw).
	raw []byte
}

// Raw is the value's bytes, for templates that need them.
func (m message) Raw() []byte { return m.raw }

func setValue(m *message, v []byte) {
	m.raw = v
	if v == nil {
		m.Null = true
		return
	}
	if utf8.Valid(v) {
		m.Value = string(v)
	} else {
		m.ValueBase64 = base64.StdEncoding.EncodeToString(v)
	}
}

func fromKafka(r *kgo.Record) message {
	off, ts := r.Offset, r.Timestamp.UTC()
	m := message{Topic: r.Topic, Partition: r.Partition, Offset: &off, Key: string(r.Key), Timestamp: &ts}
	setValue(&m, r.Value)
	if len(r.Headers) > 0 {
		m.Headers = map[string]string{}
		for _, h := range r.Headers {
			m.Headers[h.Key] = string(h.Value)
		}
	}
	return m
}

func pulsarID(id pulsar.MessageID) string {
	return fmt.Sprintf("%d:%d:%d:%d", id.LedgerID(), id.EntryID(), id.PartitionIdx(), id.BatchIdx())
}

// pulsarOffset is the message's Kafka offset: the broker entry metadata
// index, which pulsar-client-go turns into each batched message's own.
func pulsarOffset(msg pulsar.Message) *int64 {
	idx := msg.Index()
	if idx == nil {
		return nil
	}
	off := int64(*idx)
	return &off
}

func fromPulsar(msg pulsar.Message) message {
	pt := msg.PublishTime().UTC()
	m := message{Topic: msg.Topic(), Partition: max(msg.ID().PartitionIdx(), 0), MessageID: pulsarID(msg.ID()),
		Key: msg.Key(), Offset: pulsarOffset(msg), PublishTime: &pt, Headers: msg.Properties()}
	if len(m.Headers) == 0 {
		m.Headers = nil
	}
	if et := msg.EventTime(); !et.IsZero() && et.UnixNano() != 0 {
		et = et.UTC()
		m.EventTime = &et
	}
	v := msg.Payload()
	if v == nil {
		v = []byte{} // a Pulsar message without payload is empty, not null
	}
	setValue(&m, v)
	return m
}

// printer writes messages in the chosen format.
type printer struct {
	w    io.Writer
	kind string // raw, json, template
	tmpl *template.Template
}

func newPrinter(w io.Writer, format, tmpl string) (*printer, error) {
	p := &printer{w: w, kind: format}
	switch format {
	case "raw", "json":
	case "template":
		if tmpl == "" {
			return nil, usagef("--format template needs --template")
		}
		t, err := template.New("message").Parse(tmpl)
		if err != nil {
			return nil, usagef("--template: %v", err)
		}
		p.tmpl = t
	default:
		return nil, usagef("--format %q: want raw, json or template", format)
	}
	return p, nil
}

func (p *printer) print(m message) error {
	switch p.kind {
	case "json":
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	case "template":
		var b strings.Builder
		if err := p.tmpl.Execute(&b, m); err != nil {
			return fmt.Errorf("--template: %w", err)
		}
		s := b.String()
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		_, err := io.WriteString(p.w, s)
		return err
	}
	_, err := fmt.Fprintf(p.w, "%s\n", m.raw)
	return err
}

func produceCommand() *command {
	var (
		protocol  string
		key       string
		headers   listFlag
		format    string
		value     string
		valueSet  bool // --value "" produces an empty value
		partition int
		input     string
	)
	return &command{
		name: "produce", summary: "produce records from stdin (one per line) or --value, over Kafka or Pulsar", args: "TOPIC",
		long: `Formats of the input lines: raw (each line is a value) or json
({"key": "k", "value": "text" or any JSON, "headers": {"h": "v"}}; "value": null is a Kafka tombstone).
Each acknowledged record is reported: Kafka partition and offset, or Pulsar message id.

Examples:
  echo hello | kopernik produce orders -k order-1 -H source=cli
  kopernik produce orders --protocol pulsar --value '{"id": 1}'
  kopernik produce orders --format json < records.jsonl`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&protocol, "protocol", "kafka", "client: kafka or pulsar")
			fs.StringVar(&key, "k", "", "`KEY` of every record (Pulsar: partition key)")
			fs.Var(&headers, "H", "header (Pulsar: property) `KEY=VALUE` of every record (repeatable)")
			fs.StringVar(&format, "format", "raw", "input format: raw or json")
			fs.Func("value", "produce one record with this `VALUE` instead of reading input", func(v string) error {
				value, valueSet = v, true
				return nil
			})
			fs.IntVar(&partition, "partition", -1, "Kafka: produce to this partition (-1: by key hash)")
			fs.StringVar(&input, "f", "-", "read records from `FILE` (-: stdin)")
		},
		run: func(e *env, args []string) error {
			if err := oneOf("protocol", protocol, "kafka", "pulsar"); err != nil {
				return err
			}
			if err := oneOf("format", format, "raw", "json"); err != nil {
				return err
			}
			hdrs, err := keyValues(headers, "-H")
			if err != nil {
				return err
			}
			n, err := topicName(args[0])
			if err != nil {
				return err
			}
			src := produceSource{format: format, key: key, headers: hdrs}
			if valueSet {
				src.one = &value
			} else if input == "-" {
				src.r = e.stdin
			} else {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				src.r = f
			}
			if protocol == "pulsar" {
				if partition >= 0 {
					return usagef("--partition is Kafka's; Pulsar producers place by key")
				}
				return producePulsar(e, n, src)
			}
			return produceKafka(e, n, src, int32(partition))
		},
	}
}

// produceSource yields the records to produce.
type produceSource struct {
	format  string
	key     string
	headers map[string]string
	one     *string
	r       io.Reader
}

// each calls fn with every record's key (nil: none), value (nil: null)
// and headers, in input order.
func (s produceSource) each(fn func(key *string, value []byte, headers map[string]string) error) error {
	var keyp *string
	if s.key != "" {
		keyp = &s.key
	}
	if s.one != nil {
		return s.line(*s.one, keyp, fn)
	}
	sc := bufio.NewScanner(s.r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if err := s.line(sc.Text(), keyp, fn); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (s produceSource) line(text string, keyp *string, fn func(key *string, value []byte, headers map[string]string) error) error {
	if s.format == "raw" {
		return fn(keyp, []byte(text), s.headers)
	}
	if strings.TrimSpace(text) == "" {
		return nil
	}
	var r record
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		return fmt.Errorf("input line %q: %v", text, err)
	}
	if r.Key == nil {
		r.Key = keyp
	}
	h := map[string]string{}
	for k, v := range s.headers {
		h[k] = v
	}
	for k, v := range r.Headers {
		h[k] = v
	}
	var v []byte
	switch {
	case len(r.Value) == 0 || string(r.Value) == "null":
		v = nil
	case r.Value[0] == '"':
		var str string
		if err := json.Unmarshal(r.Value, &str); err != nil {
			return fmt.Errorf("input line %q: value: %v", text, err)
		}
		v = []byte(str)
	default:
		v = []byte(r.Value)
	}
	return fn(r.Key, v, h)
}

// ack is one record's outcome, printed in input order.
type ack struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    *int64 `json:"offset,omitempty"`
	MessageID string `json:"messageId,omitempty"`
	err       error
}

// ackPrinter prints outcomes in the order records were sent while later
// records are still in flight.
type ackPrinter struct {
	e     *env
	queue chan chan ack
	done  chan error
	count int
}

func newAckPrinter(e *env) *ackPrinter {
	p := &ackPrinter{e: e, queue: make(chan chan ack, 4096), done: make(chan error, 1)}
	go func() {
		var first error
		for c := range p.queue {
			a := <-c
			if a.err != nil {
				if first == nil {
					first = a.err
				}
				continue
			}
			p.count++
			if e.json() {
				b, _ := json.Marshal(a)
				fmt.Fprintf(e.stdout, "%s\n", b)
			} else if a.Offset != nil {
				fmt.Fprintf(e.stdout, "produced to %s partition %d offset %d\n", a.Topic, a.Partition, *a.Offset)
			} else {
				fmt.Fprintf(e.stdout, "produced to %s message id %s\n", a.Topic, a.MessageID)
			}
		}
		p.done <- first
	}()
	return p
}

func (p *ackPrinter) next() chan ack {
	c := make(chan ack, 1)
	p.queue <- c
	return c
}

func (p *ackPrinter) finish() error {
	close(p.queue)
	err := <-p.done
	if err != nil {
		return fmt.Errorf("produced %d records, then: %w", p.count, err)
	}
	return nil
}

func produceKafka(e *env, n broker.TopicName, src produceSource, partition int32) error {
	opts, err := e.kafkaOpts()
	if err != nil {
		return err
	}
	opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(e.globals.timeout))
	if partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	topic := kafkaName(n)
	acks := newAckPrinter(e)
	err = src.each(func(key *string, value []byte, headers map[string]string) error {
		r := &kgo.Record{Topic: topic, Value: value, Partition: partition}
		if key != nil {
			r.Key = []byte(*key)
		}
		for _, k := range slices.Sorted(maps.Keys(headers)) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(headers[k])})
		}
		c := acks.next()
		cl.Produce(e.ctx, r, func(r *kgo.Record, err error) {
			off := r.Offset
			c <- ack{Topic: r.Topic, Partition: r.Partition, Offset: &off, err: err}
		})
		return nil
	})
	if ferr := cl.Flush(e.ctx); err == nil {
		err = ferr
	}
	if aerr := acks.finish(); err == nil {
		err = aerr
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topic %s not found (kopernik topics create %s): %w", topic, topic, err)
	}
	return err
}

func producePulsar(e *env, n broker.TopicName, src produceSource) error {
	pc, err := e.pulsar()
	if err != nil {
		return err
	}
	// Kafka's key placement, so that a key lands on the partition a Kafka
	// producer would choose.
	p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: n.String(), SendTimeout: e.globals.timeout,
		MessageRouter: router.PulsarRouter})
	if err != nil {
		return fmt.Errorf("pulsar producer on %s: %w", n, err)
	}
	defer p.Close()
	acks := newAckPrinter(e)
	err = src.each(func(key *string, value []byte, headers map[string]string) error {
		msg := &pulsar.ProducerMessage{Payload: value, Properties: headers}
		if key != nil {
			msg.Key = *key
		}
		c := acks.next()
		p.SendAsync(e.ctx, msg, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			a := ack{Topic: n.String(), err: err}
			if err == nil {
				a.Partition, a.MessageID = max(id.PartitionIdx(), 0), pulsarID(id)
			}
			c <- a
		})
		return nil
	})
	if ferr := p.FlushWithCtx(e.ctx); err == nil && ferr != nil {
		err = ferr
	}
	if aerr := acks.finish(); err == nil {
		err = aerr
	}
	return err
}

type consumeOpts struct {
	protocol  string
	from      string
	offset    int64
	partition int
	count     int
	group     string
	format    string
	template  string
	idle      time.Duration
}

func consumeCommand() *command {
	var o consumeOpts
	return &command{
		name: "consume", summary: "print records of a topic, over Kafka or Pulsar, with or without a group", args: "TOPIC",
		long: `Without --group nothing is committed (Kafka: direct partition reads; Pulsar: a reader).
With --group, Kafka joins the consumer group and commits what it printed; Pulsar uses a durable
Exclusive subscription of that name and acknowledges what it printed.

Template fields: .Topic .Partition .Offset .MessageID .Key .Value .Headers .Timestamp .EventTime
.PublishTime (.Offset and the times are pointers: {{with .Offset}}{{.}}{{end}}).

Examples:
  kopernik consume orders --from earliest -n 10
  kopernik consume orders --group billing --format json
  kopernik consume orders --protocol pulsar --format template --template '{{.MessageID}} {{.Key}}={{.Value}}'`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.protocol, "protocol", "kafka", "client: kafka or pulsar")
			fs.StringVar(&o.from, "from", "latest", "start: earliest, latest or offset (--offset; Kafka only); a group resumes from its commits")
			fs.Int64Var(&o.offset, "offset", 0, "with --from offset: the start offset of every partition")
			fs.IntVar(&o.partition, "partition", -1, "Kafka without a group: only this partition")
			fs.IntVar(&o.count, "n", 0, "stop after N records (0: run until interrupted or --idle)")
			fs.StringVar(&o.group, "group", "", "consumer `GROUP` (Kafka) or subscription (Pulsar); none: read without committing")
			fs.StringVar(&o.format, "format", "raw", "output: raw (the value), json (one object a line) or template")
			fs.StringVar(&o.template, "template", "", "Go text/template `TEXT` for --format template")
			fs.DurationVar(&o.idle, "idle", 0, "stop when no record arrived for this long (0: never)")
		},
		run: func(e *env, args []string) error {
			if err := oneOf("protocol", o.protocol, "kafka", "pulsar"); err != nil {
				return err
			}
			if err := oneOf("from", o.from, "earliest", "latest", "offset"); err != nil {
				return err
			}
			n, err := topicName(args[0])
			if err != nil {
				return err
			}
			p, err := newPrinter(e.stdout, o.format, o.template)
			if err != nil {
				return err
			}
			if o.protocol == "pulsar" {
				if o.from == "offset" || o.partition >= 0 {
					return usagef("--from offset and --partition are Kafka's; Pulsar starts at earliest or latest")
				}
				return consumePulsar(e, n, o, p)
			}
			if o.group != "" && (o.partition >= 0 || o.from == "offset") {
				return usagef("--partition and --from offset read without a group; a group resumes from its commits")
			}
			return consumeKafka(e, n, o, p)
		},
	}
}

// idleContext is cancelled when touch was not called for idle (0: never).
func idleContext(ctx context.Context, idle time.Duration) (context.Context, func(), func()) {
	ctx, cancel := context.WithCancel(ctx)
	if idle <= 0 {
		return ctx, func() {}, cancel
	}
	t := time.AfterFunc(idle, cancel)
	return ctx, func() { t.Reset(idle) }, func() { t.Stop(); cancel() }
}

func consumeKafka(e *env, n broker.TopicName, o consumeOpts, p *printer) error {
	opts, err := e.kafkaOpts()
	if err != nil {
		return err
	}
	topic := kafkaName(n)
	start := kgo.NewOffset().AtEnd()
	switch o.from {
	case "earliest":
		start = kgo.NewOffset().AtStart()
	case "offset":
		start = kgo.NewOffset().At(o.offset)
	}
	if o.group != "" {
		opts = append(opts, kgo.ConsumerGroup(o.group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(start),
			kgo.AutoCommitMarks(), kgo.FetchMaxWait(500*time.Millisecond))
	} else {
		_, ends, err := e.offsets(e.ctx, topic)
		if err != nil {
			return err
		}
		parts := map[int32]kgo.Offset{}
		ends.Each(func(lo kadm.ListedOffset) {
			if o.partition < 0 || lo.Partition == int32(o.partition) {
				parts[lo.Partition] = start
			}
		})
		if len(parts) == 0 {
			return fmt.Errorf("topic %s has no partition %d", topic, o.partition)
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchMaxWait(500*time.Millisecond))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, touch, stop := idleContext(e.ctx, o.idle)
	defer stop()
	seen := 0
	var perr error
	for perr == nil && (o.count == 0 || seen < o.count) {
		fetches := cl.PollRecords(ctx, o.count-seen)
		if ctx.Err() != nil {
			break
		}
		var ferr error
		fetches.EachError(func(t string, part int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("%s partition %d: %w", t, part, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if perr != nil || (o.count > 0 && seen >= o.count) {
				return
			}
			touch()
			perr = p.print(fromKafka(r))
			seen++
			if o.group != "" {
				cl.MarkCommitRecords(r)
			}
		})
	}
	if o.group != "" {
		cctx, cancel := context.WithTimeout(context.Background(), e.globals.timeout)
		defer cancel()
		if err := cl.CommitMarkedOffsets(cctx); err != nil && perr == nil {
			perr = fmt.Errorf("committing: %w", err)
		}
	}
	return perr
}

func consumePulsar(e *env, n broker.TopicName, o consumeOpts, p *printer) error {
	pc, err := e.pulsar()
	if err != nil {
		return err
	}
	ctx, touch, stop := idleContext(e.ctx, o.idle)
	defer stop()
	// One loop over a reader (no group: nothing acknowledged) or a
	// durable subscription (each printed message acknowledged).
	var next func(context.Context) (pulsar.Message, error)
	ack := func(pulsar.Message) error { return nil }
	if o.group == "" {
		start := pulsar.LatestMessageID()
		if o.from == "earliest" {
			start = pulsar.EarliestMessageID()
		}
		r, err := pc.CreateReader(pulsar.ReaderOptions{Topic: n.String(), StartMessageID: start})
		if err != nil {
			return fmt.Errorf("pulsar reader on %s: %w", n, err)
		}
		defer r.Close()
		next = r.Next
	} else {
		pos := pulsar.SubscriptionPositionLatest
		if o.from == "earliest" {
			pos = pulsar.SubscriptionPositionEarliest
		}
		c, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: n.String(), SubscriptionName: o.group, Type: pulsar.Exclusive,
			SubscriptionInitialPosition: pos})
		if err != nil {
			return fmt.Errorf("pulsar subscription %s on %s: %w", o.group, n, err)
		}
		defer c.Close()
		next, ack = c.Receive, c.Ack
	}
	for seen := 0; o.count == 0 || seen < o.count; seen++ {
		msg, err := next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		touch()
		if err := p.print(fromPulsar(msg)); err != nil {
			return err
		}
		if err := ack(msg); err != nil {
			return err
		}
	}
	return nil
}
