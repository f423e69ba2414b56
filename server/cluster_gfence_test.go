package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/kafka"
)

// TestClusterGroupWritesFenced: a broker that lost a group's coordinator
// unit (its lease revoked in etcd while it is, as far as the cluster is
// concerned, paused) can neither write the group's record nor have a
// commit it forwards applied, though it still holds the fence it took as
// coordinator; the new coordinator's record stands, and a franz-go group
// carries on across the move without reading a committed record again.
func TestClusterGroupWritesFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("two brokers, etcd and an S3 server")
	}
	etcd, brokers := startCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic, group = "gfence", "gf"
	var seeds []string
	for _, s := range brokers {
		seeds = append(seeds, s.Addr("kafka").String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			r := &kgo.Record{Partition: int32(i % 2), Value: []byte(strconv.Itoa(i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[string]int{}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(500*time.Millisecond), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	consume := func(want int) {
		t.Helper()
		for n := 0; n < want; {
			fs := consumer.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d: %v", n, want, ctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) {
				seen[string(r.Value)]++
				n++
			})
			if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
	}
	produce(0, 20)
	consume(20)

	// The group's coordinator and the fence it writes under.
	h := fnv.New32a()
	h.Write([]byte(group))
	unit := fmt.Sprintf("kafka-coordinator://public/default/%d", h.Sum32()%16)
	owner, err := brokers[0].Broker().Cluster().OwnerOf(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	var zombie, other *Server
	for _, s := range brokers {
		if s.member.Self().NodeID == owner.NodeID {
			zombie = s
		} else {
			other = s
		}
	}
	fence, err := zombie.Broker().Cluster().Fence(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	// The coordinator wrote the group's record through its fence (in a
	// cluster every group record write is fenced: none is made without).
	kind := "kafka-group/public/default"
	var rec struct{ Generation int32 }
	if b, err := zombie.Broker().GetState(ctx, kind, group); err != nil || json.Unmarshal(b, &rec) != nil || rec.Generation < 1 {
		t.Fatalf("group record before the revoke: %s (%v)", b, err)
	}
	if err := zombie.Broker().PutStateFenced(ctx, fence, "gfence-probe", "p", []byte("ok")); err != nil {
		t.Fatalf("write under a holding fence: %v", err)
	}

	// The coordinator "pauses" past its lease: revoked in etcd.
	ec, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	if _, err := ec.Revoke(ctx, clientv3.LeaseID(zombie.member.Self().Lease)); err != nil {
		t.Fatal(err)
	}

	// The group carries on at its new coordinator (whichever broker, the
	// zombie rejoined under a new lease included) from its commits.
	produce(20, 40)
	consume(20)
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s consumed %d times", v, n)
		}
	}
	if len(seen) != 40 {
		t.Errorf("consumed %d distinct records, want 40", len(seen))
	}
	record, err := other.Broker().GetState(ctx, kind, group)
	if err != nil {
		t.Fatal(err)
	}

	// The zombie's group record write under its old fence fails, and the
	// new coordinator's record stands.
	err = zombie.Broker().PutStateFenced(ctx, fence, kind, group, []byte(`{"generation":1}`))
	if !errors.Is(err, broker.ErrUnitFenced) {
		t.Fatalf("group record written under a lost fence: %v", err)
	}
	if after, err := other.Broker().GetState(ctx, kind, group); err != nil || !bytes.Equal(after, record) {
		t.Fatalf("group record after the fenced write: %s (%v), want %s", after, err, record)
	}

	// A commit forwarded under the old fence is refused by the
	// partition's owner, NOT_COORDINATOR, and the commit stays.
	p0, _ := broker.ParseTopicName(topic+"-partition-0", "public", "default")
	powner, err := other.Broker().Cluster().Owner(ctx, p0)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"group": group, "topic": p0.String(), "commit": true, "offset": 0, "leaderEpoch": -1, "fence": fence})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+powner.HTTP+"/internal/kafka/v1/offsets", bytes.NewReader(body))
	req.Header.Set(kafka.InternalSecretHeader, other.internalSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ErrorCode int16 `json:"errorCode"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || out.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("forwarded commit under a lost fence: error code %d (%v), want NOT_COORDINATOR", out.ErrorCode, err)
	}
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); !ok || o.At != 20 {
		t.Fatalf("partition 0's commit after the fenced forward: %+v, want 20", o)
	}
}
