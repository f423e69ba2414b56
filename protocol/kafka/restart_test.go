package kafka

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol"
)

// TestRestart closes the handler and the broker and reopens both on the same
// metadata store and ledger factory: topics, configs, topic ids and data
// survive, and producer ids are not handed out twice.
//
// The metadata store and ledger factory are closed and reopened from disk.
func TestRestart(t *testing.T) {
	s := startDurableServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": ptr("123000")}, "keep"); err != nil {
		t.Fatal(err)
	}
	tds, _ := adm.ListTopics(ctx, "keep")
	id := tds["keep"].ID
	p := newKgo(t, s.addr, kgo.DefaultProduceTopic("keep"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 5 {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	pid := s.h.pids.next()
	p.Close()

	s.restart()

	adm = kadm.NewClient(newKgo(t, s.addr))
	tds, err := adm.ListTopics(ctx, "keep")
	if err != nil || len(tds["keep"].Partitions) != 2 || tds["keep"].ID != id {
		t.Fatalf("after restart: %v %+v (id was %v)", err, tds, id)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "keep")
	if err != nil || configValue(rcs[0].Configs, "retention.ms") != "123000" {
		t.Fatalf("configs after restart: %v %+v", err, rcs)
	}
	if next := s.h.pids.next(); next <= pid {
		t.Fatalf("producer id %d handed out again after %d", next, pid)
	}
	// Data.
	t.Run("data", func(t *testing.T) {
		part, err := s.broker.OpenPartition(ctx, broker.TopicName{Domain: "persistent", Tenant: "public", Namespace: "default", Local: "keep-partition-1"}, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := part.ReadFromIndex(ctx, 0, 1, 1); err != nil {
			t.Fatalf("read after restart: %v", err)
		}
		c := newKgo(t, s.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"keep": {1: kgo.NewOffset().AtStart()}}))
		var got []string
		for len(got) < 5 {
			fs := c.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if got[0] != "0" || got[4] != "4" {
			t.Fatalf("data after restart: %v", got)
		}
	})
}

// TestHandlerRestart closes only the handler: the broker keeps its loaded
// partitions and a new handler serves the same data, fetch sessions reset.
func TestHandlerRestart(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	p := newKgo(t, s.addr, kgo.DefaultProduceTopic("hr"), kgo.AllowAutoTopicCreation())
	for i := range 5 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.h.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	<-s.served
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(protocol.Env{Broker: s.broker, Logger: testLogger()}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s.h, s.addr = h, ln.Addr().String()
	s.served = make(chan error, 1)
	go func() { s.served <- h.Serve(ctx, ln) }()
	c := newKgo(t, s.addr, kgo.ConsumeTopics("hr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < 5 {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if got[0] != "0" || got[4] != "4" {
		t.Fatalf("after handler restart: %v", got)
	}
}
