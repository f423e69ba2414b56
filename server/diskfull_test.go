package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/segment"
)

// startStorageServer starts Kafka + Pulsar + HTTP over a data dir whose
// ledger files go through ffs (nil: the OS); settings are more key,
// value pairs.
func startStorageServer(t testing.TB, dataDir string, ffs segment.FS, settings ...string) *Server {
	t.Helper()
	kv := map[string]string{
		"data-dir": dataDir, "http-addr": "127.0.0.1:0", "protocols": "kafka,pulsar",
		"kafka-addr": "127.0.0.1:0", "pulsar-addr": "127.0.0.1:0", "storage-retry-interval": "50ms",
	}
	for i := 0; i+1 < len(settings); i += 2 {
		kv[settings[i]] = settings[i+1]
	}
	cfg, err := Load("", nil, kv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LedgerFS = ffs
	s, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func httpGet(t *testing.T, s *Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr("http").String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of an unlabelled metric line in /metrics.
func metricValue(t *testing.T, s *Server, name string) string {
	t.Helper()
	_, body := httpGet(t, s, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStorageFailureEndToEnd: a full disk under one partition, then under
// all: Kafka producers get KAFKA_STORAGE_ERROR (or retry transparently),
// Pulsar producers resend transparently, health and metrics report the
// failed partitions, other partitions keep working, and once space is back
// writes resume by themselves and every acknowledged record reads back once.
func TestStorageFailureEndToEnd(t *testing.T) {
	ffs := &segment.FaultFS{FS: segment.OSFS{}}
	dataDir := t.TempDir()
	// A short checkpoint: partitions' files are created by it (before, a
	// new ledger's bytes wait in memory, out of reach of a failing disk).
	s := startStorageServer(t, dataDir, ffs, "journal-checkpoint-interval", "100ms")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic = "full"
	kaddr := s.Addr("kafka").String()

	// Idempotent (the default), unbounded retries: storage errors are retried.
	retrying, err := kgo.NewClient(kgo.SeedBrokers(kaddr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer retrying.Close()
	// No retries: sees the error code.
	strict, err := kgo.NewClient(kgo.SeedBrokers(kaddr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DisableIdempotentWrite(), kgo.RecordRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	if _, err := kadm.NewClient(retrying).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	pcl, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + s.Addr("pulsar").String(), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()

	var mu sync.Mutex
	acked := map[string]bool{} // values acknowledged to a producer
	produce := func(cl *kgo.Client, part int32, value string) error {
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: part, Value: []byte(value)}).FirstErr()
		if err == nil {
			mu.Lock()
			acked[value] = true
			mu.Unlock()
		}
		return err
	}
	for p := int32(0); p < 3; p++ {
		for i := range 5 {
			if err := produce(retrying, p, fmt.Sprintf("before-%d-%d", p, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if code, body := httpGet(t, s, "/admin/v2/brokers/health"); code != 200 || body != "ok" {
		t.Fatalf("health before: %d %q", code, body)
	}
	waitUntil(t, 10*time.Second, "the partitions' files", func() bool { return localLogs(t, dataDir) == 3 })

	round := 0
	check := func(name, substr string, failedParts []int32) {
		t.Run(name, func(t *testing.T) {
			round++
			ffs.FailWrites(substr, syscall.ENOSPC)
			for _, p := range failedParts {
				err := produce(strict, p, fmt.Sprintf("strict-%d-%d", round, p))
				if !errors.Is(err, kerr.KafkaStorageError) {
					t.Fatalf("partition %d on a full disk: %v, want KAFKA_STORAGE_ERROR", p, err)
				}
			}
			failed := map[int32]bool{}
			for _, p := range failedParts {
				failed[p] = true
			}
			for p := int32(0); p < 3; p++ {
				if !failed[p] {
					if err := produce(strict, p, fmt.Sprintf("other-%d-%d", round, p)); err != nil {
						t.Fatalf("unaffected partition %d: %v", p, err)
					}
				}
			}
			code, body := httpGet(t, s, "/admin/v2/brokers/health")
			if code != http.StatusServiceUnavailable {
				t.Fatalf("health while failed: %d %q", code, body)
			}
			for p := int32(0); p < 3; p++ {
				name := fmt.Sprintf("persistent://public/default/%s-partition-%d", topic, p)
				if strings.Contains(body, name+":") != failed[p] {
					t.Fatalf("health body %q: partition %d listed = %v", body, p, !failed[p])
				}
			}
			if !strings.Contains(body, "disk full") {
				t.Fatalf("health body does not say why: %q", body)
			}
			if v := metricValue(t, s, "kopernik_storage_failed_partitions"); v != fmt.Sprint(len(failedParts)) {
				t.Fatalf("kopernik_storage_failed_partitions %q", v)
			}

			// Producers that retry: Kafka idempotent and Pulsar, in flight
			// while the disk is full.
			var wg sync.WaitGroup
			errs := make(chan error, 2*len(failedParts))
			for _, p := range failedParts {
				wg.Add(2)
				go func() {
					defer wg.Done()
					errs <- produce(retrying, p, fmt.Sprintf("retried-%d-%d", round, p))
				}()
				go func() {
					defer wg.Done()
					// Creation fails when the client's connection closes
					// under it (another producer's send error closes the
					// shared connection): an application retries it.
					var pp pulsar.Producer
					var err error
					for try := 0; try < 50 && ctx.Err() == nil; try++ {
						pp, err = pcl.CreateProducer(pulsar.ProducerOptions{
							Topic: fmt.Sprintf("persistent://public/default/%s-partition-%d", topic, p), DisableBatching: true,
							SendTimeout: time.Minute,
						})
						if err == nil {
							break
						}
						time.Sleep(20 * time.Millisecond)
					}
					if err != nil {
						errs <- err
						return
					}
					defer pp.Close()
					v := fmt.Sprintf("pulsar-%d-%d", round, p)
					if _, err := pp.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(v)}); err != nil {
						errs <- fmt.Errorf("pulsar send: %w", err)
						return
					}
					mu.Lock()
					acked[v] = true
					mu.Unlock()
				}()
			}
			time.Sleep(700 * time.Millisecond) // they keep failing and retrying meanwhile
			if len(s.Broker().StorageFailures()) != len(failedParts) {
				t.Fatalf("recovered while the disk is full: %v", s.Broker().StorageFailures())
			}
			ffs.FailWrites(substr, nil) // space is back
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("retrying producer: %v", err)
				}
			}
			waitUntil(t, 10*time.Second, "health ok", func() bool {
				code, body := httpGet(t, s, "/admin/v2/brokers/health")
				return code == 200 && body == "ok"
			})
			if v := metricValue(t, s, "kopernik_storage_failed_partitions"); v != "0" {
				t.Fatalf("kopernik_storage_failed_partitions after recovery %q", v)
			}
			for _, p := range failedParts {
				if err := produce(strict, p, fmt.Sprintf("after-%d-%d", round, p)); err != nil {
					t.Fatalf("partition %d after recovery: %v", p, err)
				}
			}
		})
	}
	check("one partition", topic+"-partition-1/", []int32{1})
	check("all partitions", "", []int32{0, 1, 2})
	if v := metricValue(t, s, "kopernik_storage_recoveries_total"); v != "4" {
		t.Fatalf("kopernik_storage_recoveries_total %q, want 4", v)
	}
	if v := metricValue(t, s, "kopernik_storage_failures_total"); v != "4" {
		t.Fatalf("kopernik_storage_failures_total %q, want 4", v)
	}
	checkReadBack(ctx, t, kaddr, topic, acked)
}

// checkReadBack consumes the topic from the start and checks that every
// acknowledged value is there exactly once.
func checkReadBack(ctx context.Context, t *testing.T, kaddr, topic string, acked map[string]bool) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kaddr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	missing := func() int {
		n := 0
		for v := range acked {
			if seen[v] == 0 {
				n++
			}
		}
		return n
	}
	for missing() > 0 {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(fctx)
		cancel()
		if ctx.Err() != nil || fctx.Err() != nil && fs.NumRecords() == 0 {
			t.Fatalf("%d acknowledged records missing (of %d)", missing(), len(acked))
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	for v, n := range seen {
		if strings.HasPrefix(v, "strict-") {
			t.Fatalf("%q was refused with KAFKA_STORAGE_ERROR but is in the log", v)
		}
		if n > 1 {
			t.Fatalf("%q read %d times", v, n)
		}
	}
	t.Logf("read back all %d acknowledged records (%d records in the topic)", len(acked), len(seen))
}

// TestRealDiskFull fills a real (tmpfs, 8 MiB) data directory with Kafka
// produce until the disk is full, then deletes a filler file and watches
// writes resume by themselves. It needs to mount (root); otherwise it skips.
func TestRealDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	// Space to give back later.
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startStorageServer(t, dir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic = "fill"
	kaddr := s.Addr("kafka").String()
	strict, err := kgo.NewClient(kgo.SeedBrokers(kaddr), kgo.DisableIdempotentWrite(), kgo.RecordRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	if _, err := kadm.NewClient(strict).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	// Incompressible (clients compress batches), reproducible per i.
	value := func(i int) []byte {
		b := fmt.Appendf(nil, "v%06d-", i)
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		for len(b) < 100<<10 {
			b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
		}
		return b
	}
	i := 0
	for ; ; i++ {
		err := strict.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value(i)}).FirstErr()
		if errors.Is(err, kerr.KafkaStorageError) {
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		acked[string(value(i))] = true
		if i > 200 {
			t.Fatal("8 MiB never filled up")
		}
	}
	t.Logf("disk full after %d records of 100 KiB", i)
	code, body := httpGet(t, s, "/admin/v2/brokers/health")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "persistent://public/default/fill") || !strings.Contains(body, "disk full") {
		t.Fatalf("health on a full disk: %d %q", code, body)
	}
	// A retrying producer in flight while the disk is full.
	retrying, err := kgo.NewClient(kgo.SeedBrokers(kaddr))
	if err != nil {
		t.Fatal(err)
	}
	defer retrying.Close()
	done := make(chan error, 1)
	go func() { done <- retrying.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value(i)}).FirstErr() }()
	time.Sleep(500 * time.Millisecond)
	if len(s.Broker().StorageFailures()) != 1 {
		t.Fatalf("failures while the disk is still full: %v", s.Broker().StorageFailures())
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("retrying producer after space came back: %v", err)
	}
	acked[string(value(i))] = true
	waitUntil(t, 10*time.Second, "health ok", func() bool {
		code, body := httpGet(t, s, "/admin/v2/brokers/health")
		return code == 200 && body == "ok"
	})
	for j := i + 1; j < i+5; j++ {
		if err := strict.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value(j)}).FirstErr(); err != nil {
			t.Fatalf("record %d after recovery: %v", j, err)
		}
		acked[string(value(j))] = true
	}
	checkReadBack(ctx, t, kaddr, topic, acked)
}
