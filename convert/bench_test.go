package convert

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

func benchMsgs(n, size int) []Message {
	msgs := make([]Message, n)
	v := bytes.Repeat([]byte("x"), size)
	for i := range msgs {
		k := []byte(fmt.Sprintf("key-%d", i))
		msgs[i] = Message{Key: k, OrderingKey: k, Value: v, Timestamp: 1_700_000_000_000 + int64(i),
			Headers: []Header{{"trace", []byte("abc")}}}
	}
	return msgs
}

var benchShapes = []struct {
	name    string
	n, size int
}{{"1x100B", 1, 100}, {"1000x100B", 1000, 100}, {"1x1MiB", 1, 1 << 20}}

func BenchmarkKafkaToPulsar(b *testing.B) {
	for _, s := range benchShapes {
		for _, c := range []struct {
			name string
			id   int
		}{{"none", kafkaNone}, {"zstd", kafkaZstd}} {
			e := kafkaEntry(b, benchMsgs(s.n, s.size), c.id, 0)
			b.Run(s.name+"/"+c.name, func(b *testing.B) {
				b.SetBytes(int64(s.n * s.size))
				b.ReportAllocs()
				var dst []byte
				for b.Loop() {
					var err error
					if dst, err = AppendKafkaToPulsar(dst[:0], e, 0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkPulsarToKafka(b *testing.B) {
	for _, s := range benchShapes {
		for _, c := range []pb.CompressionType{pb.CompressionType_NONE, pb.CompressionType_ZSTD} {
			e := pulsarEntry(b, benchMsgs(s.n, s.size), c, false, 0)
			b.Run(s.name+"/"+c.String(), func(b *testing.B) {
				b.SetBytes(int64(s.n * s.size))
				b.ReportAllocs()
				var dst []byte
				for b.Loop() {
					var err error
					if dst, err = AppendPulsarToKafka(dst[:0], e, 0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPassThrough is the same-protocol read: a copy of the stored bytes.
func BenchmarkPassThrough(b *testing.B) {
	for _, s := range benchShapes {
		e := kafkaEntry(b, benchMsgs(s.n, s.size), kafkaNone, 0)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(s.n * s.size))
			b.ReportAllocs()
			var dst []byte
			for b.Loop() {
				dst = append(dst[:0], e.Data...)
			}
		})
	}
}

var _ = broker.FormatKafka
