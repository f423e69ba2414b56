package main

// Cluster fault tests with real broker processes (docs/cluster.md,
// "Failover"): three `kopernik standalone` processes in cluster mode on an
// etcd and an S3 server the test runs, under Kafka load, while a broker is
// paused (SIGSTOP) past its lease, the object store goes away, or etcd does.

import (
	"bufio"
	"context"
	wire "encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
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
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/metadata/etcdtest"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
)

// procCycles is how many fault cycles the process cluster tests run: 1 in
// CI, more for a soak.
var procCycles = flag.Int("cluster.proc-cycles", 1, "TestClusterProcess*: fault cycles (pauses, outages) in one run")

// outageTTL is TestClusterProcessStoreOutages's lease TTL: 15 s keeps the
// leases through the shorter etcd outage (~5.5 s) with a margin for a
// renewal sent up to TTL/3 before it and the first renewal after it; 1 s
// makes every etcd outage fence every broker (a harsher soak).
var outageTTL = flag.Duration("cluster.outage-ttl", 15*time.Second, "TestClusterProcessStoreOutages: lease TTL (whole seconds)")

// clusterProc is one broker process of a test cluster.
type clusterProc struct {
	name   string
	cmd    *exec.Cmd
	addrs  map[string]string // protocol -> listening address
	nodeID int32
	log    *syncBuffer // everything the process logged (stderr)
	done   chan struct{}
}

// logged reports whether the process logged a line containing s, and
// the number of such lines.
func (p *clusterProc) logged(s string) int { return strings.Count(p.log.String(), s) }

// startClusterProc starts broker i of a cluster on etcd and s3 with lease
// ttl; it returns once the broker has joined and listens.
func startClusterProc(t *testing.T, etcd *etcdtest.Server, s3 *s3test.Server, i int, ttl string) *clusterProc {
	t.Helper()
	name := fmt.Sprintf("broker-%d", i)
	cmd := exec.Command(binary, "standalone", "--data-dir", t.TempDir(),
		"--kafka-addr", "127.0.0.1:0", "--pulsar-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--metadata-store-url", etcd.URL(), "--cluster-name", "c1", "--broker-name", name, "--cluster-lease-ttl", ttl,
		"--offload-driver", "s3", "--offload-s3-endpoint", s3.Endpoint, "--offload-s3-bucket", s3.Bucket,
		"--offload-s3-region", s3test.Region, "--object-flush-interval", "2ms", "--storage-retry-interval", "100ms")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3test.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3test.SecretKey)
	p := &clusterProc{name: name, cmd: cmd, addrs: map[string]string{}, log: new(syncBuffer), done: make(chan struct{}), nodeID: -1}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		// A paused process cannot die of SIGKILL until continued.
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s (node %d) log tail:\n%s", name, p.nodeID, tail(p.log.String(), 40))
		}
		// For a look at everything a broker said: PROC_TEST_LOGS=dir.
		if dir := os.Getenv("PROC_TEST_LOGS"); dir != "" {
			os.WriteFile(fmt.Sprintf("%s/%s-%s.log", dir, t.Name(), name), []byte(p.log.String()), 0o644)
		}
	})
	listen := regexp.MustCompile(`msg=listening protocol=(\w+) addr=(\S+)`)
	joined := regexp.MustCompile(`msg="joined cluster".* node_id=(\d+)`)
	sc := bufio.NewScanner(stderr)
	kill := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer kill.Stop()
	for sc.Scan() {
		line := sc.Text()
		p.log.Write([]byte(line + "\n"))
		if m := listen.FindStringSubmatch(line); m != nil {
			p.addrs[m[1]] = m[2]
		}
		if m := joined.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			p.nodeID = int32(n)
		}
		if strings.Contains(line, "kopernik started") {
			break
		}
	}
	go func() {
		for sc.Scan() {
			p.log.Write([]byte(sc.Text() + "\n"))
		}
		io.Copy(io.Discard, stderr) // a line too long for the scanner
	}()
	if p.addrs["kafka"] == "" || p.nodeID < 0 {
		t.Fatalf("%s did not start (kafka %q, node %d):\n%s", name, p.addrs["kafka"], p.nodeID, p.log.String())
	}
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startProcCluster starts etcd, versitygw and n broker processes.
func startProcCluster(t *testing.T, n int, ttl string) (*etcdtest.Server, *s3test.Server, []*clusterProc) {
	t.Helper()
	etcd := etcdtest.Start(t)
	s3 := s3test.Start(t)
	var procs []*clusterProc
	for i := range n {
		procs = append(procs, startClusterProc(t, etcd, s3, i, ttl))
	}
	return etcd, s3, procs
}

// procLoad is a franz-go idempotent producer writing unique values to
// every partition of a topic, recording what it was told.
type procLoad struct {
	cl    *kgo.Client
	topic string
	parts int
	stop  chan struct{}
	wg    sync.WaitGroup
	infl  sync.WaitGroup

	mu      sync.Mutex
	acked   map[string]time.Time
	failed  map[string]error
	lastAck map[int32]time.Time // partition -> last acknowledgement
}

// newProcLoad starts producing a record every interval, round robin over
// the partitions. Request timeouts are short so that the client gives up
// on a paused broker within seconds (its default would wait ~20 s).
func newProcLoad(t *testing.T, seeds []string, topic string, parts int, interval time.Duration) *procLoad {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(50*time.Millisecond), kgo.ProduceRequestTimeout(2*time.Second),
		kgo.RequestTimeoutOverhead(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	l := &procLoad{cl: cl, topic: topic, parts: parts, stop: make(chan struct{}),
		acked: map[string]time.Time{}, failed: map[string]error{}, lastAck: map[int32]time.Time{}}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			p := int32(i % parts)
			v := fmt.Sprintf("k-%d-%d", p, i)
			l.infl.Add(1)
			cl.Produce(context.Background(), &kgo.Record{Partition: p, Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer l.infl.Done()
				l.mu.Lock()
				defer l.mu.Unlock()
				if err != nil {
					l.failed[v] = err
					return
				}
				now := time.Now()
				l.acked[v] = now
				l.lastAck[r.Partition] = now
			})
			time.Sleep(interval)
		}
	}()
	return l
}

// acks returns how many records were acknowledged.
func (l *procLoad) acks() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcks waits until every partition in parts has an acknowledgement
// later than after, and returns when the last of them came.
func (l *procLoad) waitAcks(t *testing.T, parts []int32, after time.Time, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		l.mu.Lock()
		var last time.Time
		all := true
		for _, p := range parts {
			at := l.lastAck[p]
			if !at.After(after) {
				all = false
				break
			}
			if at.After(last) {
				last = at
			}
		}
		l.mu.Unlock()
		if all {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("no acknowledgement on all of partitions %v within %v", parts, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finish stops the load and waits for every record's outcome.
func (l *procLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.cl.Flush(ctx); err != nil {
		t.Fatalf("producer flush: %v", err)
	}
	l.infl.Wait()
	l.cl.Close()
}

// readAll reads topic from the start on every partition until every value
// in want has been seen (or nothing more comes for 10 s) and returns how
// often each value is in the log.
func readAll(t *testing.T, seeds []string, topic string, want map[string]time.Time) map[string]int {
	t.Helper()
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	inLog := map[string]int{}
	missing := len(want)
	for missing > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		fs := rd.PollFetches(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			inLog[v]++
			if _, ok := want[v]; ok && inLog[v] == 1 {
				missing--
			}
		})
	}
	return inLog
}

// checkLog fails t unless every acknowledged record is in the log exactly
// once and nothing else is there but records whose outcome the producer
// never learned (there are none once it flushed: it retries forever).
func checkLog(t *testing.T, l *procLoad, inLog map[string]int) (lost, dups int) {
	t.Helper()
	for v := range l.acked {
		if inLog[v] == 0 {
			lost++
		}
	}
	for v, n := range inLog {
		dups += n - 1
		if _, ok := l.acked[v]; !ok && strings.HasPrefix(v, "k-") {
			if _, failed := l.failed[v]; !failed {
				t.Errorf("%s is in the log but the producer was never told about it", v)
			}
		}
	}
	why := map[string]int{}
	for _, err := range l.failed {
		why[err.Error()]++
	}
	t.Logf("kafka: %d acknowledged, %d failed %v, %d distinct in the log, %d lost, %d duplicates", len(l.acked), len(l.failed), why, len(inLog), lost, dups)
	if lost != 0 || dups != 0 {
		t.Errorf("kafka: %d acknowledged records lost, %d duplicates", lost, dups)
	}
	// The producer retries retriable errors until the record is written:
	// a failed record means a broker answered with a non-retriable error.
	if len(l.failed) != 0 {
		t.Errorf("kafka: %d records failed (non-retriable answers): %v", len(l.failed), why)
	}
	return lost, dups
}

// leadersFrom returns partition -> leader node id as broker addr sees
// them (one Metadata request to it alone).
func leadersFrom(ctx context.Context, addr, topic string) (map[int32]int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestTimeoutOverhead(2*time.Second))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0])
	if err != nil {
		return nil, err
	}
	out := map[int32]int32{}
	for _, tp := range resp.Topics {
		if err := kerr.ErrorForCode(tp.ErrorCode); err != nil {
			return nil, err
		}
		for _, p := range tp.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, err
			}
			out[p.Partition] = p.Leader
		}
	}
	return out, nil
}

// rawBatch encodes values as one uncompressed, non-idempotent v2 record
// batch (what a plain producer sends), for requests built by hand.
func rawBatch(values ...string) []byte {
	var recs []byte
	now := time.Now().UnixMilli()
	for i, v := range values {
		var body []byte
		body = append(body, 0)                   // attributes
		body = wire.AppendVarint(body, 0)        // timestamp delta
		body = wire.AppendVarint(body, int64(i)) // offset delta
		body = wire.AppendVarint(body, -1)       // no key
		body = wire.AppendVarint(body, int64(len(v)))
		body = append(body, v...)
		body = wire.AppendVarint(body, 0) // no headers
		recs = wire.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	var b []byte
	b = wire.BigEndian.AppendUint64(b, 0) // base offset
	b = wire.BigEndian.AppendUint32(b, 0) // length, below
	b = wire.BigEndian.AppendUint32(b, 0xffffffff)
	b = append(b, 2)                      // magic
	b = wire.BigEndian.AppendUint32(b, 0) // crc, below
	b = wire.BigEndian.AppendUint16(b, 0) // attributes
	b = wire.BigEndian.AppendUint32(b, uint32(len(values)-1))
	b = wire.BigEndian.AppendUint64(b, uint64(now))
	b = wire.BigEndian.AppendUint64(b, uint64(now))
	b = wire.BigEndian.AppendUint64(b, ^uint64(0)) // producer id -1
	b = wire.BigEndian.AppendUint16(b, 0xffff)     // producer epoch -1
	b = wire.BigEndian.AppendUint32(b, 0xffffffff) // base sequence -1
	b = wire.BigEndian.AppendUint32(b, uint32(len(values)))
	b = append(b, recs...)
	wire.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	wire.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// produceTo sends one raw produce of values to partition through broker b
// (acks=all) and returns the partition's error code.
func produceTo(ctx context.Context, b *kgo.Broker, topic string, partition int32, values ...string) (int16, error) {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, rawBatch(values...)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, b)
	if err != nil {
		return 0, err
	}
	return resp.Topics[0].Partitions[0].ErrorCode, nil
}

// groupOn returns a group name whose coordinator is node (FindCoordinator
// through cl).
func groupOn(ctx context.Context, t *testing.T, cl *kgo.Client, node int32) string {
	t.Helper()
	for i := range 200 {
		name := fmt.Sprintf("g%d", i)
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = name
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode == 0 && resp.NodeID == node {
			return name
		}
	}
	t.Fatalf("no group coordinated by node %d in 200 tries", node)
	return ""
}

// procGroup is a franz-go group consumer that records what it saw and
// commits what it processed.
type procGroup struct {
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}

	mu          sync.Mutex
	seen        map[string]int
	redelivered []kgo.EpochOffset // partition in Epoch, offset of records seen again
}

func newProcGroup(t *testing.T, seeds []string, topic, group string) *procGroup {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitMarks(), kgo.AutoCommitInterval(200*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }), kgo.MetadataMinAge(50*time.Millisecond),
		kgo.RequestTimeoutOverhead(time.Second), kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	g := &procGroup{cl: cl, stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]int{}}
	go func() {
		defer close(g.done)
		for {
			select {
			case <-g.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			fs := cl.PollFetches(ctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				g.mu.Lock()
				g.seen[string(r.Value)]++
				if g.seen[string(r.Value)] > 1 {
					g.redelivered = append(g.redelivered, kgo.EpochOffset{Epoch: r.Partition, Offset: r.Offset})
				}
				g.mu.Unlock()
				cl.MarkCommitRecords(r)
			})
		}
	}()
	return g
}

// check waits until the group has seen every value in the log, then
// fails t if it re-read a record committed at commits (taken before the
// fault) or missed any.
func (g *procGroup) check(t *testing.T, inLog map[string]int, commits map[int32]kgo.EpochOffset) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var missing, again int
	for {
		g.mu.Lock()
		missing, again = 0, 0
		for v := range inLog {
			if g.seen[v] == 0 {
				missing++
			}
		}
		for _, n := range g.seen {
			again += n - 1
		}
		g.mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(g.stop)
	<-g.done
	g.cl.Close()
	t.Logf("group: %d records never reached it, %d redelivered", missing, again)
	if missing != 0 {
		t.Errorf("group: %d records in the log never reached the group", missing)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.redelivered {
		if c, ok := commits[r.Epoch]; ok && r.Offset < c.Offset {
			t.Errorf("group redelivered partition %d offset %d, committed up to %d before the fault", r.Epoch, r.Offset, c.Offset)
		}
	}
}

// pulsarTopicOn returns a Pulsar topic whose owner is the broker with
// Pulsar address owner (HTTP lookup through via, which assigns owners).
func pulsarTopicOn(t *testing.T, via, owner string) string {
	t.Helper()
	for i := range 100 {
		local := fmt.Sprintf("ppaused-%d", i)
		resp, err := http.Get("http://" + via + "/lookup/v2/topic/persistent/public/default/" + local)
		if err != nil {
			t.Fatal(err)
		}
		var l struct {
			BrokerURL string `json:"brokerUrl"`
		}
		err = json.NewDecoder(resp.Body).Decode(&l)
		resp.Body.Close()
		if err == nil && strings.HasSuffix(l.BrokerURL, "//"+owner) {
			return "persistent://public/default/" + local
		}
	}
	t.Fatalf("no Pulsar topic owned by %s in 100 lookups", owner)
	return ""
}

// pulsarLoad is a pulsar-client-go producer sending unique payloads and a
// Shared subscription receiving them.
type pulsarLoad struct {
	cl     pulsar.Client
	prod   pulsar.Producer
	cons   pulsar.Consumer
	stop   chan struct{}
	done   chan struct{}
	sendWG sync.WaitGroup
	infl   sync.WaitGroup

	mu     sync.Mutex
	acked  map[string]time.Time // payload -> acknowledged
	sentAt map[string]time.Time
	failed int
	seen   map[string]int
}

func newPulsarLoad(t *testing.T, url, topic string) *pulsarLoad {
	t.Helper()
	cl, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, Logger: plog.DefaultNopLogger(), OperationTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := cl.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := cl.CreateProducer(pulsar.ProducerOptions{Topic: topic, SendTimeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l := &pulsarLoad{cl: cl, prod: prod, cons: cons, stop: make(chan struct{}), done: make(chan struct{}),
		acked: map[string]time.Time{}, sentAt: map[string]time.Time{}, seen: map[string]int{}}
	go func() {
		defer close(l.done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			m, err := cons.Receive(ctx)
			cancel()
			if err != nil {
				select {
				case <-l.stop:
					return
				default:
					continue
				}
			}
			l.mu.Lock()
			l.seen[string(m.Payload())]++
			l.mu.Unlock()
			cons.Ack(m)
		}
	}()
	l.sendWG.Add(1)
	go func() {
		defer l.sendWG.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			v := fmt.Sprintf("p-%d", i)
			l.infl.Add(1)
			l.mu.Lock()
			l.sentAt[v] = time.Now()
			l.mu.Unlock()
			prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(v)}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				defer l.infl.Done()
				l.mu.Lock()
				defer l.mu.Unlock()
				if err != nil {
					l.failed++
					return
				}
				l.acked[v] = time.Now()
			})
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return l
}

// firstAckSentAfter is when the first message sent after at was
// acknowledged (zero: none yet).
func (l *pulsarLoad) firstAckSentAfter(at time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for v, a := range l.acked {
		if l.sentAt[v].After(at) && (first.IsZero() || a.Before(first)) {
			first = a
		}
	}
	return first
}

// check stops sending, waits for every acknowledged message to be
// received, and fails t if one is not (duplicates are reported: Pulsar
// deduplication is off by default, so delivery is at least once).
func (l *pulsarLoad) check(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.sendWG.Wait()
	if err := l.prod.Flush(); err != nil {
		t.Logf("pulsar flush: %v", err)
	}
	l.infl.Wait()
	deadline := time.Now().Add(30 * time.Second)
	var lost, twice, acked, failed int
	for {
		l.mu.Lock()
		lost, twice, acked, failed = 0, 0, len(l.acked), l.failed
		for v := range l.acked {
			if l.seen[v] == 0 {
				lost++
			}
		}
		for _, n := range l.seen {
			twice += n - 1
		}
		l.mu.Unlock()
		if lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	<-l.done
	l.prod.Close()
	l.cons.Close()
	l.cl.Close()
	t.Logf("pulsar: %d sends acknowledged, %d failed, %d acknowledged never received, %d received twice", acked, failed, lost, twice)
	if lost != 0 {
		t.Errorf("pulsar: %d acknowledged messages never received", lost)
	}
}

// procTopic creates topic with parts partitions on the cluster of procs
// and returns the Kafka seeds, the processes by node id and the admin
// client it used (closed with the test).
func procTopic(ctx context.Context, t *testing.T, procs []*clusterProc, topic string, parts int32) ([]string, map[int32]*clusterProc, *kgo.Client) {
	t.Helper()
	var seeds []string
	byNode := map[int32]*clusterProc{}
	for _, p := range procs {
		seeds = append(seeds, p.addrs["kafka"])
		byNode[p.nodeID] = p
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	return seeds, byNode, admin
}

// TestClusterProcessPausedOwnerFenced: the broker owning Kafka partition 0
// (and, in the first cycle, the group's coordinator slot and a Pulsar
// topic) is paused (SIGSTOP) under load past its lease TTL (1 s). The
// others take its partitions and the group over; the producers and the
// group continue through their retries. While it is paused, a produce is
// sent to it over a connection it accepted before (the kernel keeps the
// bytes); it reads it when continued (SIGCONT): a zombie's late write.
// Checks: the woken broker notices that it lost its lease (its log says
// so), answers the late write and then a produce to each of its former
// partitions with NOT_LEADER_OR_FOLLOWER, the late write is never in the
// log, every acknowledged Kafka record is there exactly once, the group
// never re-reads what it had committed before the pause, and every
// acknowledged Pulsar message reaches the Shared subscription.
func TestClusterProcessPausedOwnerFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("three broker processes, etcd and an S3 server")
	}
	_, _, procs := startProcCluster(t, 3, "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(*procCycles)*time.Minute)
	defer cancel()
	const topic, parts = "paused", 6
	seeds, byNode, admin := procTopic(ctx, t, procs, topic, parts)

	load := newProcLoad(t, seeds, topic, parts, 2*time.Millisecond)
	var group *procGroup
	var plo *pulsarLoad
	var commitsBefore map[int32]kgo.EpochOffset
	for cycle := range *procCycles {
		leaders, err := leadersFrom(ctx, seeds[0], topic)
		if err != nil {
			t.Fatal(err)
		}
		victim := byNode[leaders[0]]
		var onVictim []int32
		for p, l := range leaders {
			if l == victim.nodeID {
				onVictim = append(onVictim, p)
			}
		}
		var live *clusterProc
		for _, p := range procs {
			if p != victim && live == nil {
				live = p
			}
		}
		if group == nil {
			// The first victim coordinates the group and owns the Pulsar
			// topic, whose clients go through another broker.
			group = newProcGroup(t, seeds, topic, groupOn(ctx, t, admin, victim.nodeID))
			ptopic := pulsarTopicOn(t, live.addrs["http"], victim.addrs["pulsar"])
			plo = newPulsarLoad(t, "pulsar://"+live.addrs["pulsar"], ptopic)
		}
		time.Sleep(1500 * time.Millisecond) // load and commits under way
		commitsBefore = group.cl.CommittedOffsets()[topic]

		// A connection to the victim, opened before the pause.
		probe, err := kgo.NewClient(kgo.SeedBrokers(victim.addrs["kafka"]), kgo.RequestTimeoutOverhead(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		pb := probe.SeedBrokers()[0]
		if _, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, pb); err != nil {
			t.Fatal(err)
		}
		lostBefore := victim.logged("cluster lease lost")
		logBefore := len(victim.log.String())

		before := load.acks()
		if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		paused := time.Now()
		t.Logf("cycle %d: paused node %d (partitions %v) after %d acks", cycle+1, victim.nodeID, onVictim, before)
		zombie := fmt.Sprintf("zombie-%d", cycle)
		type answer struct {
			code int16
			err  error
			at   time.Time
		}
		late := make(chan answer, 1)
		go func() {
			code, err := produceTo(ctx, pb, topic, onVictim[0], zombie)
			late <- answer{code, err, time.Now()}
		}()

		// Re-owned: a live broker names another leader for every one of
		// the victim's partitions.
		var reowned time.Duration
		for {
			l, err := leadersFrom(ctx, live.addrs["kafka"], topic)
			moved := err == nil
			for _, p := range onVictim {
				if !moved || l[p] == victim.nodeID {
					moved = false
					break
				}
			}
			if moved {
				reowned = time.Since(paused)
				break
			}
			if time.Since(paused) > 30*time.Second {
				t.Fatal("victim's partitions not re-owned 30s into its pause")
			}
			time.Sleep(20 * time.Millisecond)
		}
		resumedAt := load.waitAcks(t, onVictim, paused, 30*time.Second)
		resumed := resumedAt.Sub(paused)
		// Stay paused past three TTLs whatever happened, so that the
		// woken broker's lease is surely gone.
		if d := 3*time.Second - time.Since(paused); d > 0 {
			time.Sleep(d)
		}

		if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		woke := time.Now()
		var fenced time.Duration
		for victim.logged("cluster lease lost") == lostBefore {
			if time.Since(woke) > 10*time.Second {
				t.Fatalf("woken node %d did not log that it lost its lease within 10s", victim.nodeID)
			}
			time.Sleep(5 * time.Millisecond)
		}
		fenced = time.Since(woke)
		var a answer
		select {
		case a = <-late:
		case <-time.After(20 * time.Second):
			t.Fatal("the late write got no answer 20s after the wake")
		}
		if a.err == nil && a.code == 0 {
			t.Fatalf("the woken broker acknowledged a write to partition %d, which it no longer owns", onVictim[0])
		}
		if a.err != nil || a.code != kerr.NotLeaderForPartition.Code {
			t.Fatalf("the woken broker answered the late write with %v, want NOT_LEADER_OR_FOLLOWER (clients retry it at the owner)", kerrOr(a.code, a.err))
		}
		t.Logf("cycle %d: late write answered %v %.3fs after the wake", cycle+1, kerrOr(a.code, a.err), a.at.Sub(woke).Seconds())
		probe.Close()

		// Once it knows, it refuses its former partitions.
		wc, err := kgo.NewClient(kgo.SeedBrokers(victim.addrs["kafka"]))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range onVictim {
			code, err := produceTo(ctx, wc.SeedBrokers()[0], topic, p, zombie+"-after")
			if err != nil {
				t.Fatalf("produce to the woken broker: %v", err)
			}
			if code != kerr.NotLeaderForPartition.Code {
				t.Fatalf("woken broker answered a produce to its former partition %d with %v, want NOT_LEADER_OR_FOLLOWER", p, kerr.ErrorForCode(code))
			}
		}
		wc.Close()
		t.Logf("cycle %d: re-owned %.2fs after the pause, acks resumed on the victim's partitions after %.2fs; "+
			"woken broker logged the lost lease %.3fs after SIGCONT", cycle+1, reowned.Seconds(), resumed.Seconds(), fenced.Seconds())
		if cycle == 0 {
			for plo.firstAckSentAfter(paused).IsZero() && time.Since(woke) < 30*time.Second {
				time.Sleep(10 * time.Millisecond)
			}
			if at := plo.firstAckSentAfter(paused); !at.IsZero() {
				t.Logf("cycle 1: pulsar acks resumed %.2fs after the pause, %.2fs after the wake", at.Sub(paused).Seconds(), at.Sub(woke).Seconds())
			} else {
				t.Errorf("pulsar: no acknowledgement 30s after the wake")
			}
		}
		time.Sleep(time.Second) // the woken broker rejoins; load continues
		if testing.Verbose() {
			for _, line := range strings.Split(victim.log.String()[logBefore:], "\n") {
				if strings.Contains(line, "lease") || strings.Contains(line, "fenc") || strings.Contains(line, "unloading") || strings.Contains(line, "level=ERROR") {
					t.Logf("node %d: %s", victim.nodeID, line)
				}
			}
		}
	}
	load.finish(t)
	inLog := readAll(t, seeds, topic, load.acked)
	for v := range inLog {
		if strings.HasPrefix(v, "zombie-") {
			t.Errorf("the late write %s is in the log", v)
		}
	}
	checkLog(t, load, inLog)
	group.check(t, inLog, commitsBefore)
	plo.check(t)
}

func kerrOr(code int16, err error) error {
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(code)
}

// TestClusterProcessStoreOutages: under franz-go load (an idempotent
// producer and a group) on three broker processes with a 15 s lease TTL:
//   - the S3 server is stopped (SIGKILL) for 3 s and restarted on the same
//     port and directory;
//   - the embedded etcd is stopped and restarted at once on the same data
//     dir and ports: down ~5.5 s (embed's Close waits 5.2 s for the
//     brokers' open streams before it lets go; no RPC is served
//     meanwhile), shorter than the TTL: every broker keeps its lease, and
//     commits in flight are resolved by reading their record back;
//   - etcd is stopped for TTL-4 s more (past the TTL): every broker gives its
//     lease up, unloads everything and rejoins once etcd is back.
//
// The producer sees retriable errors or waits, and continues; afterwards
// every acknowledged record is in the log exactly once, and the group
// resumed from its commits.
func TestClusterProcessStoreOutages(t *testing.T) {
	if testing.Short() {
		t.Skip("three broker processes, etcd and an S3 server")
	}
	ttl := *outageTTL
	etcd, s3, procs := startProcCluster(t, 3, ttl.String())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(*procCycles)*time.Minute)
	defer cancel()
	const topic, parts = "outages", 6
	seeds, _, _ := procTopic(ctx, t, procs, topic, parts)
	all := make([]int32, parts)
	for p := range all {
		all[p] = int32(p)
	}
	load := newProcLoad(t, seeds, topic, parts, 2*time.Millisecond)
	group := newProcGroup(t, seeds, topic, "outages")
	var commitsBefore map[int32]kgo.EpochOffset

	// outage stops a store, waits extra, restarts it, and waits for acks
	// on every partition; it returns how many brokers gave their lease up.
	outage := func(cycle int, what string, stop func(), extra time.Duration, restart func() error) int {
		t.Helper()
		lostBefore := make([]int, len(procs))
		for i, p := range procs {
			lostBefore[i] = p.logged("cluster lease lost")
		}
		// A broker that lost its lease first unloads its partitions
		// ("lease_lost=true", each close waiting for its appends in
		// flight), then logs "cluster lease lost": the first line is when
		// it noticed.
		noticedBefore := make([]int, len(procs))
		for i, p := range procs {
			noticedBefore[i] = p.logged("lease_lost=true") + p.logged("cluster lease lost")
		}
		before := load.acks()
		stopped := time.Now()
		// When each broker says it gave its lease up, while it is down.
		var gaveUp []time.Duration
		watching := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			seen := make([]bool, len(procs))
			for {
				for i, p := range procs {
					if !seen[i] && p.logged("lease_lost=true")+p.logged("cluster lease lost") > noticedBefore[i] {
						seen[i] = true
						gaveUp = append(gaveUp, time.Since(stopped))
					}
				}
				select {
				case <-watching:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		stop()
		time.Sleep(extra)
		during := load.acks() - before
		close(watching)
		<-watched
		if err := restart(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		resumed := load.waitAcks(t, all, back, 60*time.Second).Sub(back)
		fenced := 0
		for i, p := range procs {
			if p.logged("cluster lease lost") > lostBefore[i] {
				fenced++
			}
		}
		var gave []string
		for _, d := range gaveUp {
			gave = append(gave, fmt.Sprintf("%.2fs", d.Seconds()))
		}
		t.Logf("cycle %d: %s down %.1fs (%d acks meanwhile, of appends stored before); %d of %d brokers gave their lease up (noticed while down, after %v); acks resumed on every partition %.2fs after its return",
			cycle, what, back.Sub(stopped).Seconds(), during, fenced, len(procs), gave, resumed.Seconds())
		time.Sleep(time.Second) // load on the recovered cluster
		return fenced
	}
	for cycle := 1; cycle <= *procCycles; cycle++ {
		time.Sleep(1500 * time.Millisecond)
		commitsBefore = group.cl.CommittedOffsets()[topic]
		outage(cycle, "object store", s3.Stop, 3*time.Second, s3.Restart)
		if n := outage(cycle, "etcd (restarted)", etcd.Stop, 0, etcd.Restart); n != 0 && ttl >= 12*time.Second {
			t.Errorf("%d brokers gave their lease up in an etcd outage shorter than the TTL (%v)", n, ttl)
		}
		if n := outage(cycle, "etcd (past the TTL)", etcd.Stop, ttl-4*time.Second, etcd.Restart); n != len(procs) {
			t.Errorf("%d of %d brokers kept their lease through an etcd outage longer than the TTL (%v)", len(procs)-n, len(procs), ttl)
		}
	}
	load.finish(t)
	inLog := readAll(t, seeds, topic, load.acked)
	checkLog(t, load, inLog)
	group.check(t, inLog, commitsBefore)
}
