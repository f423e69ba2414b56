package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// limitedBroker runs the broker binary under a 256 file descriptor limit
// and returns its Kafka address, a snapshot function of its log lines and
// its HTTP address.
func limitedBroker(t *testing.T, args ...string) (string, func() []string, string) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash for ulimit")
	}
	args = append([]string{"standalone", "--data-dir", t.TempDir(),
		"--kafka-addr", "127.0.0.1:0", "--pulsar-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "text"}, args...)
	cmd := exec.Command("bash", append([]string{"-c", `ulimit -n 256 && exec "$0" "$@"`, binary}, args...)...)
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
	started := make(chan [2]string, 1)
	go func() {
		re := regexp.MustCompile(`msg=listening protocol=(kafka|http) addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		addrs := map[string]string{}
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			logs = append(logs, line)
			mu.Unlock()
			if m := re.FindStringSubmatch(line); m != nil {
				addrs[m[1]] = m[2]
			}
			if strings.Contains(line, "kopernik started") {
				started <- [2]string{addrs["kafka"], addrs["http"]}
			}
		}
	}()
	select {
	case a := <-started:
		return a[0], func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), logs...)
		}, a[1]
	case <-time.After(30 * time.Second):
		t.Fatal("broker did not start")
	}
	return "", nil, ""
}

// metric returns the value of an unlabelled metric from the broker's
// /metrics at httpAddr.
func metric(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// produceToAll writes one record to each of parts partitions of topic and
// returns how many were acked and the failures by message; a record failing
// with UNKNOWN_SERVER_ERROR fails t.
func produceToAll(ctx context.Context, t *testing.T, cl *kgo.Client, parts int, value string) (int, map[string]int) {
	var wg sync.WaitGroup
	var fmu sync.Mutex
	failed := map[string]int{}
	ok := 0
	for p := range parts {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Partition: int32(p), Value: []byte(value)}, func(_ *kgo.Record, err error) {
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
	return ok, failed
}

// TestManyPartitionsUnderFewDescriptors: 300 partitions (two files each)
// under a 256 descriptor limit all work: partitions' files share a bounded
// descriptor budget (max-open-files, 3/4 of the limit by default), idle
// ones closed and reopened. Two rounds of writes with checkpoints between
// them (which create and sync every partition's files), then every record
// is read back.
func TestManyPartitionsUnderFewDescriptors(t *testing.T) {
	addr, _, httpAddr := limitedBroker(t, "--journal-checkpoint-interval", "500ms")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, parts = "many", 300
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		if ok, failed := produceToAll(ctx, t, cl, parts, fmt.Sprint("round-", round)); ok != parts {
			t.Fatalf("round %d: %d of %d records acked, failures: %v", round, ok, parts, failed)
		}
		time.Sleep(1500 * time.Millisecond) // a checkpoint creates and syncs the files
	}
	// The budget held: 3/4 of 256 descriptors, 600 files, files evicted.
	if open := metric(t, httpAddr, "kopernik_storage_open_files"); open > 192 || open == 0 {
		t.Fatalf("kopernik_storage_open_files %v, want 1..192", open)
	}
	if ev := metric(t, httpAddr, "kopernik_storage_file_evictions_total"); ev == 0 {
		t.Fatal("no file evicted: 600 files under a 192-descriptor budget (the test proves nothing)")
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[int32]int{}
	n := 0
	for n < 2*parts {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", n, 2*parts, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Errorf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprint("round-", got[r.Partition]); string(r.Value) != want {
				t.Errorf("partition %d offset %d: %q, want %q", r.Partition, r.Offset, r.Value, want)
			}
			got[r.Partition]++
			n++
		})
	}
}

// TestOutOfFileDescriptorsIsExplained runs the broker with a 256 file
// descriptor limit, no descriptor budget for partitions' files
// (max-open-files -1) and without the journal (each partition's first
// write creates and syncs its files at once), and writes to 300
// partitions: opening logs runs out of descriptors. Every failed record
// must carry a code a client can act on (KAFKA_STORAGE_ERROR, retriable;
// never UNKNOWN_SERVER_ERROR), the broker must log the partition and the
// cause, and it must keep serving the connection it has.
func TestOutOfFileDescriptorsIsExplained(t *testing.T) {
	addr, logs, _ := limitedBroker(t, "--max-open-files", "-1", "--journal=false")
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
	ok, failed := produceToAll(ctx, t, cl, parts, "v")
	t.Logf("%d records acked, failures: %v", ok, failed)
	if len(failed) == 0 {
		t.Fatal("no record failed: the descriptor limit was not reached (the test proves nothing)")
	}
	// The connection still works: metadata of the topic.
	if _, err := kadm.NewClient(cl).ListTopics(ctx, topic); err != nil {
		t.Fatalf("broker stopped answering after running out of descriptors: %v", err)
	}
	explained := 0
	lines := logs()
	for _, l := range lines {
		if strings.Contains(l, "out of file descriptors") && strings.Contains(l, "persistent://public/default/many-partition-") {
			explained++
		}
	}
	t.Logf("%d log lines explain the failures", explained)
	if explained == 0 {
		t.Fatalf("no log line names a partition and the cause; log:\n%s", strings.Join(lines, "\n"))
	}
}
