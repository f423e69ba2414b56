package convert

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// fuzzNorm is norm plus what a conversion may legitimately change: the
// time kind of messages whose batch mixes kinds (Kafka's is per batch) or
// whose publish time cannot be one (<= 0).
func fuzzNorm(msgs []Message) []Message {
	all := len(msgs) > 0 && msgs[0].Timestamp > 0
	for _, m := range msgs {
		all = all && m.LogAppend
	}
	out := norm(msgs)
	for i := range out {
		out[i].LogAppend = out[i].LogAppend && all
	}
	return out
}

func addSeeds(f *testing.F, kafka bool) {
	r := rand.New(rand.NewPCG(5, 6))
	for i, n := range []int{1, 3, 20} {
		if kafka {
			c := kafkaCodecs[i%len(kafkaCodecs)]
			f.Add(kafkaEntry(f, randKafka(r, n), c.id, 0).Data)
			f.Add(kafkaEntry(f, randKafka(r, n), kafkaNone, 0).Data)
		} else {
			f.Add(pulsarEntry(f, randPulsar(r, n), pulsarCodecs[i%len(pulsarCodecs)], false, 0).Data)
			f.Add(pulsarEntry(f, randPulsar(r, n), pb.CompressionType_NONE, false, 0).Data)
			f.Add(pulsarEntry(f, randPulsar(r, 1), pb.CompressionType_NONE, true, 0).Data)
		}
	}
}

// FuzzKafkaToPulsar: whatever a Kafka batch holds, a successful conversion
// decodes to the same records, and back to Kafka to the same records again.
func FuzzKafkaToPulsar(f *testing.F) {
	addSeeds(f, true)
	MaxBatchBytes = 4 << 20 // keep decompression bombs cheap
	f.Fuzz(func(t *testing.T, data []byte) {
		n := int32(1)
		if len(data) >= kafkaHeaderSize {
			n = int32(binary.BigEndian.Uint32(data[57:]))
		}
		e := &broker.Entry{Format: broker.FormatKafka, MsgCount: n, FirstIndex: 3, PublishTime: 1_700_000_000_000, Data: data}
		p, err := KafkaToPulsar(e)
		if err != nil {
			return
		}
		want, _ := decodeKafka(data)
		got, err := decodePulsar(p)
		if err != nil {
			t.Fatalf("converted batch does not decode: %v", err)
		}
		equalMsgs(t, fuzzNorm(want), fuzzNorm(got))
		k, err := PulsarToKafka(&broker.Entry{MsgCount: n, FirstIndex: 3, Data: p})
		if err != nil {
			t.Fatal(err)
		}
		checkKafkaBatch(t, k, 3, int(n))
		back, err := decodeKafka(k)
		if err != nil {
			t.Fatal(err)
		}
		equalMsgs(t, fuzzNorm(want), fuzzNorm(back))
	})
}

// FuzzPulsarToKafka: the same, from a stored Pulsar payload.
func FuzzPulsarToKafka(f *testing.F) {
	addSeeds(f, false)
	MaxBatchBytes = 4 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		want, err := decodePulsar(data)
		if err != nil {
			return
		}
		n := int32(len(want))
		k, err := PulsarToKafka(&broker.Entry{MsgCount: n, FirstIndex: 8, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		checkKafkaBatch(t, k, 8, int(n))
		got, err := decodeKafka(k)
		if err != nil {
			t.Fatal(err)
		}
		equalMsgs(t, fuzzNorm(want), fuzzNorm(got))
		p, err := KafkaToPulsar(&broker.Entry{MsgCount: n, FirstIndex: 8, PublishTime: 1, Data: k})
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodePulsar(p)
		if err != nil {
			t.Fatal(err)
		}
		equalMsgs(t, fuzzNorm(want), fuzzNorm(back))
	})
}

// TestWriteCorpus regenerates the committed seed corpus under
// testdata/fuzz (KOPERNIK_WRITE_CORPUS=1 go test -run TestWriteCorpus).
func TestWriteCorpus(t *testing.T) {
	if os.Getenv("KOPERNIK_WRITE_CORPUS") == "" {
		t.Skip("set KOPERNIK_WRITE_CORPUS=1 to rewrite testdata/fuzz seeds")
	}
	r := rand.New(rand.NewPCG(7, 8))
	write := func(target, name string, data []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range kafkaCodecs {
		write("FuzzKafkaToPulsar", c.name, kafkaEntry(t, randKafka(r, 4), c.id, 0).Data)
	}
	for _, c := range pulsarCodecs {
		write("FuzzPulsarToKafka", strings.ToLower(c.String()), pulsarEntry(t, randPulsar(r, 4), c, false, 0).Data)
	}
	write("FuzzPulsarToKafka", "single", pulsarEntry(t, randPulsar(r, 1), pb.CompressionType_NONE, true, 0).Data)
}
