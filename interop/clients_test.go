package interop

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/pulsar-client-go/pulsar"
	kafkago "github.com/segmentio/kafka-go"
)

// pulsarMessages produces n batched messages with a key, two properties and
// an event time (LZ4), and returns their event time base.
func pulsarMessages(t *testing.T, e *env, topic string, n int) time.Time {
	t.Helper()
	p, err := e.pulsarClient(t).CreateProducer(pulsar.ProducerOptions{Topic: topic, CompressionType: pulsar.LZ4,
		BatchingMaxMessages: uint(n), BatchingMaxPublishDelay: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := ctxT(t)
	t0 := time.UnixMilli(time.Now().UnixMilli() - 60_000)
	for i := range n {
		p.SendAsync(ctx, &pulsar.ProducerMessage{Key: "k" + strconv.Itoa(i), Payload: []byte(strconv.Itoa(i)),
			EventTime: t0.Add(time.Duration(i) * time.Millisecond), Properties: map[string]string{"i": strconv.Itoa(i)}}, nil)
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	return t0
}

// TestOtherKafkaClientsReadPulsarMessages: sarama (at 2.1 and 3.6), kafka-go
// and librdkafka (kcat) read the converted batches.
func TestOtherKafkaClientsReadPulsarMessages(t *testing.T) {
	e := start(t)
	topic := topicName("p2k-clients")
	const n = 20
	t0 := pulsarMessages(t, e, topic, n)
	check := func(t *testing.T, i int, off int64, key, value string, hdr string, ts time.Time) {
		t.Helper()
		if off != int64(i) || key != "k"+strconv.Itoa(i) || value != strconv.Itoa(i) || hdr != strconv.Itoa(i) ||
			(!ts.IsZero() && !ts.Equal(t0.Add(time.Duration(i)*time.Millisecond))) {
			t.Fatalf("record %d: offset %d key %q value %q header %q time %v", i, off, key, value, hdr, ts)
		}
	}

	for _, v := range []sarama.KafkaVersion{sarama.V2_1_0_0, sarama.V3_6_0_0} {
		t.Run("sarama-"+v.String(), func(t *testing.T) {
			cfg := sarama.NewConfig()
			cfg.Version = v
			c, err := sarama.NewConsumer([]string{e.kafka}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			ctx := ctxT(t)
			for i := range n {
				select {
				case m := <-pc.Messages():
					hdr := ""
					if len(m.Headers) == 1 && string(m.Headers[0].Key) == "i" {
						hdr = string(m.Headers[0].Value)
					}
					check(t, i, m.Offset, string(m.Key), string(m.Value), hdr, m.Timestamp)
				case err := <-pc.Errors():
					t.Fatal(err)
				case <-ctx.Done():
					t.Fatalf("%d of %d", i, n)
				}
			}
		})
	}

	t.Run("kafka-go", func(t *testing.T) {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{e.kafka}, Topic: topic, Partition: 0,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		defer r.Close()
		ctx := ctxT(t)
		for i := range n {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			hdr := ""
			if len(m.Headers) == 1 && m.Headers[0].Key == "i" {
				hdr = string(m.Headers[0].Value)
			}
			check(t, i, m.Offset, string(m.Key), string(m.Value), hdr, m.Time)
		}
	})

	t.Run("kcat", func(t *testing.T) {
		if _, err := exec.LookPath("kcat"); err != nil {
			t.Skip("kcat not installed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// check.crcs=true: librdkafka verifies the converted batches' CRC.
		out, err := exec.CommandContext(ctx, "kcat", "-C", "-b", e.kafka, "-t", topic, "-p", "0", "-o", "beginning",
			"-c", strconv.Itoa(n), "-e", "-X", "check.crcs=true", "-f", "%o|%k|%s|%h|%T\n").CombinedOutput()
		if err != nil {
			t.Fatalf("kcat: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != n {
			t.Fatalf("kcat printed %d lines:\n%s", len(lines), out)
		}
		for i, l := range lines {
			f := strings.Split(l, "|")
			if len(f) != 5 {
				t.Fatalf("kcat line %q", l)
			}
			off, _ := strconv.ParseInt(f[0], 10, 64)
			ms, _ := strconv.ParseInt(f[4], 10, 64)
			check(t, i, off, f[1], f[2], strings.TrimPrefix(f[3], "i="), time.UnixMilli(ms))
		}
	})
}
