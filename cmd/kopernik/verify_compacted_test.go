package main

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/verify"
)

// TestVerifyCompactedUnderKills is TestVerifyUnderKills on a compacted topic
// (verify --compacted): keyed records of both protocols, the broker's
// compaction pass every 300 ms and 256 KiB ledgers, so that the process is
// SIGKILLed in the middle of compactions and raw-ledger releases; after the
// kills every partition is compacted through the admin API and read back by
// a Kafka reader and a Pulsar readCompacted reader. No key's latest value
// may be lost, no kept record may change offset, no reader may skip a kept
// record.
func TestVerifyCompactedUnderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test")
	}
	const cycles = 4
	interval := 2 * time.Second
	dir := t.TempDir()
	kp, pp, hp := newProxy(t), newProxy(t), newProxy(t)
	env := []string{"KOPERNIK_SEGMENT_BYTES=262144", "KOPERNIK_COMPACTION_INTERVAL=300ms",
		"KOPERNIK_KAFKA_ADVERTISED_ADDR=" + kp.addr(), "KOPERNIK_PULSAR_ADVERTISED_ADDR=" + pp.addr()}
	var cmd *exec.Cmd
	start := func() {
		var addrs map[string]string
		cmd, addrs = startProcessEnv(t, dir, env)
		kp.setTarget(addrs["kafka"])
		pp.setTarget(addrs["pulsar"])
		hp.setTarget(addrs["http"])
	}
	start()
	done := 0
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for done < cycles {
			time.Sleep(interval/2 + rand.N(interval))
			cmd.Process.Kill()
			cmd.Wait()
			done++
			start()
		}
	}()
	defer func() { <-killerDone }()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	h, err := verify.Run(ctx, verify.Config{
		KafkaAddr: kp.addr(), PulsarAddr: pp.addr(), HTTPAddr: hp.addr(), Topic: "verify-compacted", Partitions: 2,
		Duration: cycles*interval + interval/2, Rate: 2000, ValueBytes: 512, KafkaProducers: 1, PulsarProducers: 1,
		Compacted: true, Keys: 100,
		BeforeFinal: func(ctx context.Context) error {
			select {
			case <-killerDone:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		Log: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)),
	})
	if h == nil {
		t.Fatal(err)
	}
	if err != nil {
		logMu.Lock()
		t.Logf("workload log:\n%s", logs.String())
		logMu.Unlock()
		t.Errorf("workload: %v", err)
	}
	r := verify.Check(h, verify.Options{Examples: 10, Compacted: true})
	var text bytes.Buffer
	r.WriteText(&text)
	t.Logf("report (%d kills):\n%s", done, text.String())
	if r.Acked == 0 || r.FinalRead == 0 || r.FinalRead > 2*100 {
		t.Errorf("acked %d, final readers read %d values (100 keys, 2 partitions)", r.Acked, r.FinalRead)
	}
	if !r.Valid {
		t.Errorf("anomalies found under kills")
	}
}
