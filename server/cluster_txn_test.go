package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/metadata"
)

// txnCoordinatorOf asks broker node (through cl) who coordinates the
// transactional id id.
func txnCoordinatorOf(ctx context.Context, t *testing.T, cl *kgo.Client, node int32, id string) int32 {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKey, req.CoordinatorKeys = 1, id, []string{id}
	resp, err := req.RequestWith(ctx, cl.Broker(int(node)))
	if err != nil {
		t.Fatalf("FindCoordinator(%s) from node %d: %v", id, node, err)
	}
	code, nodeID := resp.ErrorCode, resp.NodeID
	if len(resp.Coordinators) == 1 { // v4
		code, nodeID = resp.Coordinators[0].ErrorCode, resp.Coordinators[0].NodeID
	}
	if err := kerr.ErrorForCode(code); err != nil {
		t.Fatalf("FindCoordinator(%s) from node %d: %v", id, node, err)
	}
	return nodeID
}

// TestClusterTransactions: three brokers, franz-go transactional
// producers writing to partitions owned by different brokers.
//
//   - Routing: every broker names the same coordinator for a
//     transactional id; InitProducerId and DescribeTransactions sent
//     elsewhere get NOT_COORDINATOR; ListTransactions lists an id only on
//     its coordinator.
//   - Commit and abort across brokers (markers forwarded to the partitions'
//     owners): read_committed reads every committed record once and no
//     aborted one; read_uncommitted sees the aborted ones (they were
//     really written).
//   - The coordinator of two open transactions is killed (lease left to
//     expire). The new coordinator adopts them: the one whose producer
//     commits after the failover commits (all its records visible), the
//     one whose producer is gone times out and aborts (none visible, the
//     partitions' LSO moves on), and one left in PrepareCommit (a
//     coordinator dead between the Prepare write and the markers) is
//     completed by the new coordinator without its producer. The ids
//     then re-initialise with new producers and commit again.
func TestClusterTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers, etcd and an S3 server")
	}
	_, brokers := startCluster(t, 3, "object-flush-interval", "2ms", "transaction-check-interval", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic, parts = "txn-routed", 6
	var seeds []string
	for _, s := range brokers {
		seeds = append(seeds, s.Addr("kafka").String())
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	owners, nodes := leaders(ctx, t, admin, brokers[0].member.Self().NodeID, topic)
	distinct := map[int32]bool{}
	for _, o := range owners {
		distinct[o] = true
	}
	if len(distinct) < 2 {
		t.Fatalf("partition owners %v: want partitions on at least two brokers", owners)
	}

	// Routing.
	const mainID = "tx-main"
	coord := txnCoordinatorOf(ctx, t, admin, nodes[0], mainID)
	for _, n := range nodes[1:] {
		if got := txnCoordinatorOf(ctx, t, admin, n, mainID); got != coord {
			t.Fatalf("node %d says %s is coordinated by %d, node %d says %d", nodes[0], mainID, coord, n, got)
		}
	}
	other := nodes[0]
	if other == coord {
		other = nodes[1]
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr(mainID), 10000
	if resp, err := init.RequestWith(ctx, admin.Broker(int(other))); err != nil || resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("InitProducerId at non-coordinator %d: %v, code %d; want NOT_COORDINATOR", other, err, resp.ErrorCode)
	}

	producer := func(id string, timeout time.Duration, seeds ...string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID(id), kgo.TransactionTimeout(timeout),
			kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			// Retries must outlast a dead coordinator's lease (1s): until it
			// expires FindCoordinator still names the dead broker.
			kgo.RetryBackoffFn(func(int) time.Duration { return 200 * time.Millisecond }), kgo.MetadataMinAge(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	// txn runs one transaction of id writing prefix-<p> to every
	// partition; commit false aborts it after the records are stored.
	txn := func(cl *kgo.Client, prefix string, commit bool) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := range parts {
			cl.Produce(ctx, &kgo.Record{Partition: int32(p), Value: fmt.Appendf(nil, "%s-%d", prefix, p)}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatalf("%s: flush: %v", prefix, err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("%s: end (commit %v): %v", prefix, commit, err)
		}
	}
	var committed, aborted []string
	expect := func(prefix string, commit bool) {
		for p := range parts {
			v := fmt.Sprintf("%s-%d", prefix, p)
			if commit {
				committed = append(committed, v)
			} else {
				aborted = append(aborted, v)
			}
		}
	}
	main := producer(mainID, 10*time.Second, seeds...)
	defer main.Close()
	for i := range 6 {
		commit := i%2 == 0
		txn(main, fmt.Sprintf("main%d", i), commit)
		expect(fmt.Sprintf("main%d", i), commit)
	}

	desc := kmsg.NewPtrDescribeTransactionsRequest()
	desc.TransactionalIDs = []string{mainID}
	if resp, err := desc.RequestWith(ctx, admin.Broker(int(other))); err != nil || resp.TransactionStates[0].ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("DescribeTransactions at non-coordinator %d: %v %+v; want NOT_COORDINATOR", other, err, resp)
	}
	if resp, err := desc.RequestWith(ctx, admin.Broker(int(coord))); err != nil || resp.TransactionStates[0].ErrorCode != 0 ||
		resp.TransactionStates[0].State != "CompleteAbort" {
		t.Fatalf("DescribeTransactions at coordinator %d: %v %+v; want CompleteAbort", coord, err, resp)
	}
	for _, n := range nodes {
		resp, err := kmsg.NewPtrListTransactionsRequest().RequestWith(ctx, admin.Broker(int(n)))
		if err != nil {
			t.Fatal(err)
		}
		listed := slices.ContainsFunc(resp.TransactionStates, func(s kmsg.ListTransactionsResponseTransactionState) bool {
			return s.TransactionalID == mainID
		})
		if listed != (n == coord) {
			t.Fatalf("ListTransactions at node %d lists %s: %v (its coordinator is %d)", n, mainID, listed, coord)
		}
	}

	// Two ids coordinated by one broker, which is killed with both open.
	victimID := coord
	var ids []string
	for i := 0; len(ids) < 3 && i < 300; i++ {
		id := fmt.Sprintf("tx-victim-%d", i)
		if txnCoordinatorOf(ctx, t, admin, nodes[0], id) == victimID {
			ids = append(ids, id)
		}
	}
	if len(ids) < 3 {
		t.Fatalf("found %d transactional ids coordinated by node %d in 300 tries", len(ids), victimID)
	}
	var victim *Server
	var liveSeeds []string
	for _, s := range brokers {
		if s.member.Self().NodeID == victimID {
			victim = s
		} else {
			liveSeeds = append(liveSeeds, s.Addr("kafka").String())
		}
	}
	abandoned := producer(ids[0], 4*time.Second, seeds...)
	// Seeded with the survivors only: franz-go sends FindCoordinator to
	// any broker it knows, seeds included, and gives up when that one is
	// the dead broker (a dial error there is not retried).
	finisher := producer(ids[1], 60*time.Second, liveSeeds...)
	defer finisher.Close()
	prepared := producer(ids[2], 60*time.Second, seeds...)
	defer prepared.Close()
	for _, c := range []struct {
		cl     *kgo.Client
		prefix string
	}{{abandoned, "abandoned"}, {finisher, "finished"}, {prepared, "prepared"}} {
		if err := c.cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := range parts {
			c.cl.Produce(ctx, &kgo.Record{Partition: int32(p), Value: fmt.Appendf(nil, "%s-%d", c.prefix, p)}, nil)
		}
		if err := c.cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	abandoned.Close() // its producer never comes back
	expect("abandoned", false)
	// The third stands for a coordinator that died between writing
	// PrepareCommit and the markers: its record is set so in the store
	// (as the coordinator's first step of a commit writes it).
	store := brokers[0].storage.Store
	path := metadata.Join("admin/transactions", "s"+url.PathEscape("public/default/"+ids[2]))
	r, err := store.Get(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		t.Fatal(err)
	}
	if rec["state"] != "Ongoing" || len(rec["partitions"].([]any)) != parts {
		t.Fatalf("record of %s: %s", ids[2], r.Value)
	}
	rec["state"] = "PrepareCommit"
	raw, _ := json.Marshal(rec)
	if _, err := store.Put(ctx, path, raw, r.Version); err != nil {
		t.Fatal(err)
	}
	expect("prepared", true)
	killed := time.Now()
	victim.abandon()
	t.Logf("killed node %d, coordinator of %s, %v and owner of partitions %v", victimID, mainID, ids, owners)

	// For the same reason, the finisher commits once the dead broker has
	// left the survivors' Metadata and its own (franz-go refuses to retry
	// a commit whose outcome it does not know).
	for {
		if _, live := leaders(ctx, t, admin, brokers[slices.IndexFunc(brokers, func(s *Server) bool { return s != victim })].member.Self().NodeID, topic); len(live) == 2 {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatal("the killed broker still in Metadata 30s later")
		}
		time.Sleep(50 * time.Millisecond)
	}
	finisher.ForceMetadataRefresh()
	time.Sleep(200 * time.Millisecond)
	if err := finisher.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit of %s after its coordinator was killed: %v", ids[1], err)
	}
	t.Logf("%s committed %v after the kill", ids[1], time.Since(killed).Round(time.Millisecond))
	expect("finished", true)
	// The abandoned one times out on the new coordinator (its loop adopted
	// it): aborted with the epoch bumped; the prepared one is committed
	// when the unit is adopted. Both before anyone re-initialises them.
	waitState := func(id, state string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			live := nodes[0]
			if live == victimID {
				live = nodes[1]
			}
			c := txnCoordinatorOf(ctx, t, admin, live, id)
			if c == victimID {
				time.Sleep(50 * time.Millisecond) // the lease has not expired yet
				continue
			}
			d := kmsg.NewPtrDescribeTransactionsRequest()
			d.TransactionalIDs = []string{id}
			resp, err := d.RequestWith(ctx, admin.Broker(int(c)))
			if err == nil && resp.TransactionStates[0].ErrorCode == 0 && resp.TransactionStates[0].State == state {
				t.Logf("%s %s on its new coordinator %d (epoch %d) %v after the kill", id, state, c, resp.TransactionStates[0].ProducerEpoch, time.Since(killed).Round(time.Millisecond))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not %s 30s after its coordinator was killed: %v %+v", id, state, err, resp)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitState(ids[2], "CompleteCommit")
	waitState(ids[0], "CompleteAbort")
	// The producers continue after re-initialising (a new incarnation of
	// each id, the main one included).
	for i, id := range []string{ids[0], ids[1], ids[2], mainID} {
		cl := producer(id, 10*time.Second, liveSeeds...)
		prefix := fmt.Sprintf("after%d", i)
		txn(cl, prefix, true)
		expect(prefix, true)
		cl.Close()
	}

	// read_committed: exactly the committed records, each once; the last
	// transaction wrote every partition, so reading all of it means the
	// consumer passed everything before.
	read := func(level kgo.IsolationLevel, want []string) map[string]int {
		t.Helper()
		offsets := map[string]map[int32]kgo.Offset{topic: {}}
		for p := range parts {
			offsets[topic][int32(p)] = kgo.NewOffset().AtStart()
		}
		cons, err := kgo.NewClient(kgo.SeedBrokers(liveSeeds...), kgo.ConsumePartitions(offsets),
			kgo.FetchIsolationLevel(level), kgo.MetadataMinAge(50*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		seen := map[string]int{}
		rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
		defer rcancel()
		for slices.ContainsFunc(want, func(v string) bool { return seen[v] == 0 }) {
			fs := cons.PollFetches(rctx)
			if rctx.Err() != nil {
				var missing []string
				for _, v := range want {
					if seen[v] == 0 {
						missing = append(missing, v)
					}
				}
				t.Fatalf("after 60s still missing %v", missing)
			}
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
		}
		return seen
	}
	seen := read(kgo.ReadCommitted(), committed)
	for v, n := range seen {
		if strings.HasPrefix(v, "abandoned") || slices.Contains(aborted, v) {
			t.Errorf("read_committed read aborted record %s", v)
		} else if n != 1 {
			t.Errorf("read_committed read %s %d times", v, n)
		}
	}
	read(kgo.ReadUncommitted(), append(slices.Clone(committed), aborted...))
	t.Logf("%d committed records read once each, %d aborted ones never (read_uncommitted sees them)", len(committed), len(aborted))
}

// TestClusterTxnConsumeTransformProduce: a franz-go GroupTransactSession
// on three brokers whose group coordinator and transaction coordinator are
// different brokers (TxnOffsetCommit reaches the group's coordinator, which
// adds the offsets to the transaction's record in etcd; the commit applies
// them on partitions owned elsewhere through the owners). Every other
// transaction is aborted on purpose and redone. Checked: every input is in
// the read_committed output exactly once, nothing of an aborted
// transaction is, and the group's committed offsets are the inputs' ends.
func TestClusterTxnConsumeTransformProduce(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers, etcd and an S3 server")
	}
	_, brokers := startCluster(t, 3, "object-flush-interval", "2ms")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const in, out, parts, inputs = "ctp-in", "ctp-out", 3, 300
	var seeds []string
	for _, s := range brokers {
		seeds = append(seeds, s.Addr("kafka").String())
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(in))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	for _, tp := range []string{in, out} {
		if _, err := adm.CreateTopic(ctx, parts, 1, nil, tp); err != nil {
			t.Fatal(err)
		}
	}
	for i := range inputs {
		if err := admin.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	node := brokers[0].member.Self().NodeID
	// A group and a transactional id coordinated by different brokers.
	group, txnID := "", ""
	for i := 0; (group == "" || txnID == "") && i < 100; i++ {
		g := fmt.Sprintf("ctp-g%d", i)
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorKeys = g, []string{g}
		resp, err := req.RequestWith(ctx, admin.Broker(int(node)))
		if err != nil || resp.Coordinators[0].ErrorCode != 0 {
			t.Fatalf("FindCoordinator(%s): %v %+v", g, err, resp)
		}
		gc := resp.Coordinators[0].NodeID
		for j := 0; j < 100; j++ {
			id := fmt.Sprintf("ctp-t%d", j)
			if txnCoordinatorOf(ctx, t, admin, node, id) != gc {
				group, txnID = g, id
				t.Logf("group %s on node %d, transactional id %s on node %d", g, gc, id, txnCoordinatorOf(ctx, t, admin, node, id))
				break
			}
		}
	}
	if group == "" {
		t.Fatal("no group and transactional id on different coordinators")
	}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.TransactionalID(txnID), kgo.TransactionTimeout(30*time.Second),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var abortedVals []string
	done := map[string]bool{}
	for serial := 0; len(done) < inputs; serial++ {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d inputs transformed before the deadline", len(done), inputs)
		}
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := sess.PollRecords(pctx, 40)
		pcancel()
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		commit := serial%2 == 1
		val := fmt.Sprintf("txn%d", serial)
		var keys []string
		fs.EachRecord(func(r *kgo.Record) {
			keys = append(keys, string(r.Key))
			sess.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: []byte(val)}, nil)
		})
		committed, err := sess.End(ctx, kgo.TransactionEndTry(commit))
		if err != nil {
			t.Fatalf("transaction %d (commit %v, %d records): %v", serial, commit, len(keys), err)
		}
		if committed != (commit && len(keys) > 0) && len(keys) > 0 {
			t.Fatalf("transaction %d: committed %v, asked %v", serial, committed, commit)
		}
		if !committed && len(keys) > 0 {
			abortedVals = append(abortedVals, val)
		}
		for _, k := range keys {
			if committed {
				if done[k] {
					t.Fatalf("input %s transformed twice in committed transactions", k)
				}
				done[k] = true
			}
		}
	}
	if len(abortedVals) == 0 {
		t.Fatal("no transaction with records was aborted: the test proves nothing about aborts")
	}

	// The output, read_committed: every input once, from committed ones.
	offsets := map[string]map[int32]kgo.Offset{out: {}}
	for p := range parts {
		offsets[out][int32(p)] = kgo.NewOffset().AtStart()
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(offsets), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]int{}
	for len(seen) < inputs {
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		fs := cons.PollFetches(rctx)
		timedOut := rctx.Err() != nil
		rcancel()
		if timedOut {
			t.Fatalf("read_committed output has %d of %d inputs", len(seen), inputs)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if slices.Contains(abortedVals, string(r.Value)) {
				t.Errorf("read_committed read %s of aborted transaction %s", r.Key, r.Value)
			}
			seen[string(r.Key)]++
		})
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("input %s is %d times in the output", k, n)
		}
	}
	// The group's offsets are the input's ends.
	ends, err := adm.ListEndOffsets(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := got.Lookup(in, o.Partition)
		if !ok || c.At != o.Offset {
			t.Errorf("group offset of %s/%d: %+v (present %v), want %d", in, o.Partition, c, ok, o.Offset)
		}
	})
	t.Logf("%d inputs transformed once each over %d aborted transactions", inputs, len(abortedVals))
}
