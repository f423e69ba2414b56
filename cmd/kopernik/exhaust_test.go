package main

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestOutOfFileDescriptorsIsExplained runs the broker with a 256 file
// descriptor limit and writes to 300 partitions (two files each): opening
// logs runs out of descriptors. Every failed record must carry a code a
// client can act on (KAFKA_STORAGE_ERROR, retriable; never
// UNKNOWN_SERVER_ERROR), the broker must log the partition and the cause,
// and it must keep serving the connection it has.
func TestOutOfFileDescriptorsIsExplained(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash for ulimit")
	}
	cmd := exec.Command("bash", "-c", `ulimit -n 256 && exec "$0" "$@"`, binary, "standalone", "--data-dir", t.TempDir(),
		"--kafka-addr", "127.0.0.1:0", "--pulsar-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "text")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var mu sync.Mutex
	var logs []string
	started := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`msg=listening protocol=kafka addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		kafkaAddr := ""
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			logs = append(logs, line)
			mu.Unlock()
			if m := re.FindStringSubmatch(line); m != nil {
				kafkaAddr = m[1]
			}
			if strings.Contains(line, "kopernik started") {
				started <- kafkaAddr
			}
		}
	}()
	var addr string
	select {
	case addr = <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("broker did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, parts = "many", 300
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var fmu sync.Mutex
	failed := map[string]int{}
	ok := 0
	for p := range parts {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Partition: int32(p), Value: []byte("v")}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			fmu.Lock()
			defer fmu.Unlock()
			if err == nil {
				ok++
				return
			}
			failed[err.Error()]++
			if errors.Is(err, kerr.UnknownServerError) {
				t.Errorf("partition %d: %v", p, err)
			}
		})
	}
	wg.Wait()
	t.Logf("%d records acked, failures: %v", ok, failed)
	if len(failed) == 0 {
		t.Fatal("no record failed: the descriptor limit was not reached (the test proves nothing)")
	}
	// The connection still works: metadata of the topic.
	if _, err := kadm.NewClient(cl).ListTopics(ctx, topic); err != nil {
		t.Fatalf("broker stopped answering after running out of descriptors: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	explained := 0
	for _, l := range logs {
		if strings.Contains(l, "out of file descriptors") && strings.Contains(l, "persistent://public/default/many-partition-") {
			explained++
		}
	}
	t.Logf("%d log lines explain the failures", explained)
	if explained == 0 {
		t.Fatalf("no log line names a partition and the cause; log:\n%s", strings.Join(logs, "\n"))
	}
}
