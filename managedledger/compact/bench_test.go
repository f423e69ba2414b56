package compact_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// BenchmarkCompact measures one full compaction of a changelog: 200,000
// records of 100-byte values in batches of 100 (uncompressed or gzip),
// keys drawn from a key space, written to a real managed ledger (in
// memory), the view written to the OS file system (fdatasync included).
// Reported: MB/s of raw log compacted (SetBytes), records/s, and
// reclaimed = 1 - view bytes / raw bytes.
//
//	go test -run '^$' -bench BenchmarkCompact -benchtime 3x ./managedledger/compact/
func BenchmarkCompact(b *testing.B) {
	for _, keys := range []int{1_000, 100_000} {
		for _, gz := range []bool{false, true} {
			b.Run(fmt.Sprintf("keys=%d/gzip=%v", keys, gz), func(b *testing.B) { benchCompact(b, keys, gz) })
		}
	}
}

func benchCompact(b *testing.B, keys int, gz bool) {
	ctx := context.Background()
	store := metadata.NewMemory()
	ml := newLedger(b, store, ledgerName)
	rng := rand.New(rand.NewPCG(1, 2))
	const records, perBatch = 200_000, 100
	value := make([]byte, 100)
	var raw int64
	for n := 0; n < records; n += perBatch {
		recs := make([]rec, perBatch)
		for i := range recs {
			for j := range value {
				value[j] = byte('a' + rng.IntN(26))
			}
			recs[i] = rec{key: []byte(fmt.Sprintf("key-%07d", rng.IntN(keys))), value: append([]byte(nil), value...)}
		}
		data := kafkaBatch(recs, gz, false, false, 0)
		raw += int64(len(data))
		if _, err := ml.Append(ctx, managedledger.Entry{Format: managedledger.FormatKafka, MsgCount: perBatch, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(raw)
	b.ReportAllocs()
	b.ResetTimer()
	var res compact.Result
	for range b.N {
		b.StopTimer()
		c, err := compact.New(compact.Options{Dir: b.TempDir(), FS: segment.OSFS{}, Store: metadata.NewMemory(), Codec: convert.CompactionCodec{}, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err = c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex(), DeleteRetention: time.Hour})
		if err != nil || !res.Compacted {
			b.Fatal(res, err)
		}
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(1-float64(res.BytesOut)/float64(res.BytesIn), "reclaimed")
	b.ReportMetric(float64(res.RecordsOut), "kept-records")
}
