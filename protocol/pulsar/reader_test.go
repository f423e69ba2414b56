package pulsar

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

func newReader(t testing.TB, c pulsar.Client, o pulsar.ReaderOptions) pulsar.Reader {
	t.Helper()
	r, err := c.CreateReader(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func readN(t testing.TB, r pulsar.Reader, n int) []string {
	t.Helper()
	ctx := ctxT(t)
	var out []string
	for len(out) < n {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("read %d of %d: %v", len(out), n, err)
		}
		out = append(out, string(m.Payload()))
	}
	return out
}

func TestReaders(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			topic := newTopic("reader")
			p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: !batching, BatchingMaxMessages: 4})
			ids := produce(t, p, 10, "r")

			earliest := newReader(t, c, pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
			if got := readN(t, earliest, 10); got[0] != "r-0" || got[9] != "r-9" {
				t.Fatalf("earliest: %v", got)
			}

			latest := newReader(t, c, pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.LatestMessageID()})
			latestIncl := newReader(t, c, pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.LatestMessageID(), StartMessageIDInclusive: true})
			if got := readN(t, latestIncl, 1); got[0] != "r-9" {
				t.Fatalf("latest inclusive: %v", got)
			}

			fromID := newReader(t, c, pulsar.ReaderOptions{Topic: topic, StartMessageID: ids[4]})
			if got := readN(t, fromID, 5); got[0] != "r-5" || got[4] != "r-9" {
				t.Fatalf("exclusive from id 4: %v", got)
			}
			fromIDIncl := newReader(t, c, pulsar.ReaderOptions{Topic: topic, StartMessageID: ids[4], StartMessageIDInclusive: true})
			if got := readN(t, fromIDIncl, 6); got[0] != "r-4" || got[5] != "r-9" {
				t.Fatalf("inclusive from id 4: %v", got)
			}

			produce(t, p, 1, "new")
			if got := readN(t, latest, 1); got[0] != "new-0" {
				t.Fatalf("latest: %v", got)
			}
			if !earliest.HasNext() {
				t.Fatal("earliest reader: HasNext false with one more message")
			}
			readN(t, earliest, 1)
			if earliest.HasNext() {
				t.Fatal("earliest reader: HasNext true at the end")
			}
		})
	}
}

func TestSeek(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("seek")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	ids := produce(t, p, 5, "a")
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	produce(t, p, 5, "b")
	receive(t, cons, 10, true)

	if err := cons.Seek(ids[2]); err != nil {
		t.Fatal(err)
	}
	got := payloads(receive(t, cons, 7, true))
	// The broker restarts at a-2's entry; the Go client drops ids up to
	// and including the seek id itself (its startMessageID rule).
	if strings.Join(got, ",") != "a-3,a-4,b-0,b-1,b-2,b-3,b-4" {
		t.Fatalf("after seek to a-2: %v", got)
	}

	if err := cons.SeekByTime(mid); err != nil {
		t.Fatal(err)
	}
	got = payloads(receive(t, cons, 5, true))
	if got[0] != "b-0" || got[4] != "b-4" {
		t.Fatalf("after seek by time: %v", got)
	}
	expectNone(t, cons, 100*time.Millisecond)
}

func TestGetLastMessageID(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("lastid")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	ids, err := cons.GetLastMessageIDs()
	if err != nil || len(ids) != 1 {
		t.Fatal(ids, err)
	}
	if ids[0].EntryID() != -1 {
		t.Fatalf("empty topic: last id %v, want entry -1", ids[0])
	}
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	sent := produce(t, p, 3, "x")
	ids, err = cons.GetLastMessageIDs()
	if err != nil {
		t.Fatal(err)
	}
	last := sent[2]
	if ids[0].LedgerID() != last.LedgerID() || ids[0].EntryID() != last.EntryID() || ids[0].BatchIdx() != last.BatchIdx() {
		t.Fatalf("last id %v, want %v", ids[0], last)
	}
}

func TestReaderSeekByTime(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("readerseek")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	produce(t, p, 3, "a")
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	produce(t, p, 3, "b")
	r := newReader(t, c, pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	readN(t, r, 6)
	if err := r.SeekByTime(mid); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, r, 3); got[0] != "b-0" || got[2] != "b-2" {
		t.Fatalf("after seek by time: %v", got)
	}
	if err := r.SeekByTime(time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, r, 1); got[0] != "a-0" {
		t.Fatalf("after seek to the epoch: %v", got)
	}
}
