package managedledger

// TestModel is a model-based (metamorphic) test of the managed ledger's
// storage and read paths, in the spirit of pebble's metamorphic tests: one
// random sequence of operations drives a real ManagedLedger (through a real
// Factory) and a trivially correct in-memory model (model_helpers_test.go),
// and every observable result is compared. Examples in the other tests show
// that a case works; this test looks for the case nobody thought of (a
// read whose budget ends at a ledger boundary, a cache miss after eviction,
// a cursor restored after a power loss).
//
// What is compared after each operation:
//   - Append: position (same ledger +1, or a new ledger exactly when the
//     active one reached MaxLedgerBytes), indexes, publish time order.
//   - Every read (ReadEntries, the internal readEntries without the
//     first-entry exception, ReadFromIndex, ReadFromIndexWithin, cursor
//     reads): the result is a gapless run starting exactly at the entry asked
//     for, byte-for-byte equal to the model, within maxEntries and maxBytes
//     (except the documented first entry), non-empty when the contract says
//     so, and as long as the budget allows (the doc comments of ReadEntries
//     and segment.Read promise "stopping before maxBytes would be exceeded").
//   - FirstIndex, NextIndex, LastConfirmed, PositionOf, the ledger list
//     (Stats), cursor mark-delete/read positions, NextIndex and IsAcked.
//   - Retention deletes exactly the consumed sealed ledgers the policy
//     allows; TruncateBefore deletes exactly the ledgers wholly below.
//   - After close+reopen and after a modelled power loss (crashFS of
//     powerloss_test.go), everything above again; cursors come back as last
//     persisted.
//
// Variants: an in-memory FS with a non-empty Dir (entry cache on), the
// same with the cache off, the power-loss FS (cache on, crashes), and the
// OS file system in a temp dir; all of them acknowledge through the shared
// journal (small files: frequent rotation; checkpoints only as an
// operation, so that power losses find segments behind the journal), and
// two per-ledger-fsync variants (memfs-perledger, crashfs-perledger) keep
// the other path covered. Every variant offloads ledgers (opOffload)
// and reads them back: osfs-s3 to a real S3 server (objectstore/s3test;
// skipped without its binary, failed under CI=true), the others, for
// speed, to a directory-backed stand-in (dirStore, model_offload_test.go).
//
// Flags:
//
//	-ml.duration=3s  total running time of TestModel (split over the variants)
//	-ml.seed=N       run one round per variant with seed N (reproduce a failure;
//	                 select the variant with -run 'TestModel/<variant>$')
//	-ml.ops=400      operations per round
//	-ml.empty=true   also append entries without data (false: only with data)
//
// Reproducibility: a seed fixes every operation and parameter. The power-loss
// variant's crash outcome can also depend on background preallocation timing,
// so a crash-related failure may need a few runs of its seed.

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
)

var (
	modelSeed     = flag.Uint64("ml.seed", 0, "TestModel: run one round per variant with this seed (0: random seeds for -ml.duration)")
	modelDuration = flag.Duration("ml.duration", 3*time.Second, "TestModel: total running time, split over the variants")
	modelOps      = flag.Int("ml.ops", 400, "TestModel: operations per round")
	// Entries without data (never produced by Kafka or Pulsar) found a
	// short read: a read whose budget was used up exactly at a ledger's
	// end stopped before the next ledger's empty entries.
	modelEmpty = flag.Bool("ml.empty", true, "TestModel: also append entries with no data")
)

// modelVariant is one storage configuration TestModel runs over.
type modelVariant struct {
	name  string
	fs    string // "mem", "crash" or "os"
	cache bool
	s3    bool // offload to a real S3 server
	// perLedger: FactoryOptions.PerLedgerSync (no journal); the other
	// variants with a Dir acknowledge through the shared journal.
	perLedger bool
	objects   objectstore.Store // set by TestModel for s3 variants
}

var modelVariants = []modelVariant{
	{name: "memfs-cache", fs: "mem", cache: true},
	{name: "memfs-nocache", fs: "mem", cache: false},
	{name: "crashfs-cache", fs: "crash", cache: true},
	{name: "crashfs-perledger", fs: "crash", cache: true, perLedger: true},
	{name: "memfs-perledger", fs: "mem", cache: false, perLedger: true},
	{name: "osfs", fs: "os", cache: true},
	{name: "osfs-s3", fs: "os", cache: true, s3: true},
}

func TestModel(t *testing.T) {
	per := *modelDuration / time.Duration(len(modelVariants))
	for i, v := range modelVariants {
		t.Run(v.name, func(t *testing.T) {
			if v.s3 {
				v.objects = modelS3(t)
			}
			if *modelSeed != 0 {
				t.Logf("seed %d", *modelSeed)
				runModelRound(t, v, *modelSeed)
				return
			}
			master := splitmix64(uint64(time.Now().UnixNano()) + uint64(i))
			t.Logf("first round seed %d (rounds use consecutive derived seeds; a failure prints its own)", splitmix64(master))
			deadline := time.Now().Add(per)
			rounds, ops := 0, 0
			for rounds == 0 || time.Now().Before(deadline) {
				ops += runModelRound(t, v, splitmix64(master+uint64(rounds)))
				rounds++
			}
			t.Logf("%d rounds, %d operations, %d entries replayed from the journal", rounds, ops, modelReplayed.Load())
			modelReplayed.Store(0)
		})
	}
}

// splitmix64 spreads consecutive numbers into unrelated seeds.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// modelS3 starts a real S3 server for the test and returns a store on it.
func modelS3(t *testing.T) objectstore.Store {
	srv := s3test.Start(t)
	st, err := objectstore.NewS3(context.Background(), objectstore.S3Options{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}
