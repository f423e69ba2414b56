package cli

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"
)

// peek shows a topic's first messages in both protocols' views without
// consuming them: a Kafka read without a group (nothing committed) and a
// Pulsar reader (a non-durable cursor) over the same range, paired by
// offset (the Pulsar side's offset is its broker-entry-metadata index).

func peekCommand() *command {
	var count, partition int
	return &command{
		name: "peek", summary: "show a topic's first messages in the Kafka and the Pulsar view, consuming nothing", args: "TOPIC",
		long: `Each message shows its Kafka offset, key, headers and timestamp beside its Pulsar message id,
properties, event time and publish time. Nothing is committed or acknowledged.

Example:
  kopernik peek orders -n 5`,
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&count, "n", 10, "messages of each partition, from its first retained one")
			fs.IntVar(&partition, "partition", -1, "only this partition (-1: all)")
		},
		run: func(e *env, args []string) error {
			if count < 1 {
				return usagef("-n %d: want 1 or more", count)
			}
			return peek(e, args[0], count, partition)
		},
	}
}

type kafkaView struct {
	Key       string            `json:"key"`
	Headers   map[string]string `json:"headers"`
	Timestamp time.Time         `json:"timestamp"`
}

type pulsarView struct {
	MessageID   string            `json:"messageId"`
	Key         string            `json:"key"`
	Properties  map[string]string `json:"properties"`
	EventTime   *time.Time        `json:"eventTime,omitempty"`
	PublishTime time.Time         `json:"publishTime"`
}

type peeked struct {
	Partition   int32       `json:"partition"`
	Offset      int64       `json:"offset"`
	Value       string      `json:"value"`
	ValueBase64 string      `json:"valueBase64,omitempty"`
	Kafka       *kafkaView  `json:"kafka"`
	Pulsar      *pulsarView `json:"pulsar"`
}

func peek(e *env, topic string, count, only int) error {
	n, partitioned, err := e.resolve(topic)
	if err != nil {
		return err
	}
	kname := kafkaName(n)
	starts, ends, err := e.offsets(e.ctx, kname)
	if err != nil {
		return err
	}
	type span struct{ from, to int64 }
	spans := map[int32]span{}
	for _, so := range starts.Offsets().Sorted() {
		if only >= 0 && so.Partition != int32(only) {
			continue
		}
		eo, _ := ends.Lookup(kname, so.Partition)
		if to := min(eo.Offset, so.At+int64(count)); to > so.At {
			spans[so.Partition] = span{so.At, to}
		}
	}
	out := map[[2]int64]*peeked{}
	entry := func(p int32, off int64) *peeked {
		k := [2]int64{int64(p), off}
		if out[k] == nil {
			out[k] = &peeked{Partition: p, Offset: off}
		}
		return out[k]
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.globals.timeout)
	defer cancel()

	if len(spans) > 0 {
		opts, err := e.kafkaOpts()
		if err != nil {
			return err
		}
		parts := map[int32]kgo.Offset{}
		for p, s := range spans {
			parts[p] = kgo.NewOffset().At(s.from)
		}
		cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{kname: parts}),
			kgo.FetchMaxWait(200*time.Millisecond))...)
		if err != nil {
			return err
		}
		left := len(spans)
		done := map[int32]bool{}
		for left > 0 && ctx.Err() == nil {
			fetches := cl.PollFetches(ctx)
			if err := fetches.Err0(); err != nil && ctx.Err() == nil {
				cl.Close()
				return fmt.Errorf("kafka read of %s: %w", kname, err)
			}
			fetches.EachRecord(func(r *kgo.Record) {
				s := spans[r.Partition]
				if r.Offset >= s.to {
					return
				}
				m := fromKafka(r)
				pe := entry(r.Partition, r.Offset)
				pe.Value, pe.ValueBase64 = m.Value, m.ValueBase64
				pe.Kafka = &kafkaView{Key: m.Key, Headers: nonNilMap(m.Headers), Timestamp: *m.Timestamp}
				if r.Offset == s.to-1 && !done[r.Partition] {
					done[r.Partition] = true
					left--
				}
			})
		}
		cl.Close()
		if left > 0 {
			return fmt.Errorf("kafka read of %s: %d partitions not read within --timeout %v", kname, left, e.globals.timeout)
		}
	}

	pc, err := e.pulsar()
	if err != nil {
		return err
	}
	for p, s := range spans {
		name := n
		if partitioned > 0 {
			name = n.Partition(int(p))
		}
		r, err := pc.CreateReader(pulsar.ReaderOptions{Topic: name.String(), StartMessageID: pulsar.EarliestMessageID()})
		if err != nil {
			return fmt.Errorf("pulsar reader on %s: %w", name, err)
		}
		seq := s.from // pairing by order where a message carries no index
		for seq < s.to {
			msg, err := r.Next(ctx)
			if err != nil {
				r.Close()
				return fmt.Errorf("pulsar read of %s: %w", name, err)
			}
			m := fromPulsar(msg)
			off := seq
			if m.Offset != nil {
				off = *m.Offset
			}
			seq = off + 1
			if off < s.from || off >= s.to {
				continue
			}
			pe := entry(p, off)
			if pe.Kafka == nil {
				pe.Value, pe.ValueBase64 = m.Value, m.ValueBase64
			}
			pe.Pulsar = &pulsarView{MessageID: m.MessageID, Key: m.Key, Properties: nonNilMap(m.Headers),
				EventTime: m.EventTime, PublishTime: *m.PublishTime}
		}
		r.Close()
	}

	list := make([]peeked, 0, len(out))
	for _, pe := range out {
		list = append(list, *pe)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Partition != list[j].Partition {
			return list[i].Partition < list[j].Partition
		}
		return list[i].Offset < list[j].Offset
	})
	rows := [][]string{}
	for _, pe := range list {
		row := []string{strconv.Itoa(int(pe.Partition)), strconv.FormatInt(pe.Offset, 10), "-", "-", "-", "-", "-", "-"}
		if pe.Kafka != nil {
			row[3], row[5], row[6] = orDash(pe.Kafka.Key), pairs(pe.Kafka.Headers), pe.Kafka.Timestamp.Format(time.RFC3339Nano)
		}
		if pe.Pulsar != nil {
			row[2] = pe.Pulsar.MessageID
			if pe.Pulsar.EventTime != nil {
				row[7] = pe.Pulsar.EventTime.Format(time.RFC3339Nano)
			}
		}
		row[4] = shorten(pe.Value, 40)
		if pe.ValueBase64 != "" {
			row[4] = "base64:" + shorten(pe.ValueBase64, 33)
		}
		rows = append(rows, row)
	}
	return e.emit(list, []string{"PARTITION", "OFFSET", "MESSAGE-ID", "KEY", "VALUE", "HEADERS/PROPERTIES", "TIMESTAMP", "EVENT-TIME"}, rows)
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func pairs(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var b []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = append(b, k+"="+m[k])
	}
	return strings.Join(b, ",")
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", `\n`)
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
