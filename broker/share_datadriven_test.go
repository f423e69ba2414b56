package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestShareScript runs testdata/share: a script of share-consumer and
// Pulsar-consumer commands on one Shared subscription, each followed by
// what they observed (regenerate with -rewrite, then review the diff).
//
// Commands:
//
//	new limit=N                      fresh partition, subscription g, share consumer A
//	append n=N msgs=M                N entries of M messages each
//	acquire max=N [strict]           A acquires until nothing more comes (or max records; strict: exactly)
//	ack first=F last=L type=T        A acknowledges (accept, release, reject, renew, gap)
//	expire                           A's clock passes the lock duration; locks expire
//	close-a / open-a                 A's session ends / a new one starts
//	attach-b / flow-b n=N            a Pulsar-style consumer B joins / gets permits
//	b-got                            what B was delivered since the last b-got
//	nack-b / ack-b                   B negatively acknowledges / acknowledges all it holds
//	state                            cursor position, backlog, A's locks and archives
func TestShareScript(t *testing.T) {
	datadriven.RunTest(t, "testdata/share", func(t *testing.T, d *datadriven.TestData) string {
		return shareScript.run(t, d)
	})
}

type shareScriptState struct {
	p     *Partition
	sub   *Subscription
	a     *ShareConsumer
	limit int
	clock time.Time
	clkMu sync.Mutex

	bd *Dispatcher
	bc *DispatchConsumer
	bs *sink
	bN int // deliveries to B already printed
}

var shareScript = &shareScriptState{}

func (s *shareScriptState) now() time.Time {
	s.clkMu.Lock()
	defer s.clkMu.Unlock()
	return s.clock
}

func (s *shareScriptState) openA(t *testing.T) {
	a, err := s.sub.AttachShare(context.Background(), ShareOptions{Name: "A", LockDuration: time.Minute, DeliveryLimit: s.limit,
		PartitionIndex: -1, Now: s.now, NoExpiryLoop: true})
	if err != nil {
		t.Fatal(err)
	}
	s.a = a
}

// settle lets the dispatcher deliver what it will.
func settle() { time.Sleep(30 * time.Millisecond) }

func (s *shareScriptState) run(t *testing.T, d *datadriven.TestData) string {
	ctx := context.Background()
	switch d.Cmd {
	case "new":
		s.limit = 3
		if d.HasArg("limit") {
			d.ScanArgs(t, "limit", &s.limit)
		}
		s.p = testPartition(t)
		var err error
		if s.sub, err = s.p.Subscription(ctx, "g", true, InitialEarliest); err != nil {
			t.Fatal(err)
		}
		s.clock = time.Unix(1_000_000, 0)
		s.bd, s.bc, s.bs, s.bN = nil, nil, nil, 0
		s.openA(t)
		return "ok"
	case "append":
		var n, msgs int
		d.ScanArgs(t, "n", &n)
		d.ScanArgs(t, "msgs", &msgs)
		var out []string
		for range n {
			r, err := s.p.Append(ctx, AppendRequest{Format: FormatPulsar, MsgCount: int32(msgs), Data: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d-%d", r.Entry.FirstIndex, r.Entry.LastIndex()))
		}
		return strings.Join(out, " ")
	case "acquire":
		max := 100
		if d.HasArg("max") {
			d.ScanArgs(t, "max", &max)
		}
		strict := d.HasArg("strict")
		var lines []string
		got := 0
		for got < max {
			aes, err := s.a.Acquire(ctx, max-got, 30*time.Millisecond, strict)
			if err != nil {
				return "error: " + err.Error()
			}
			if len(aes) == 0 {
				break
			}
			for _, ae := range aes {
				var rs []string
				for _, r := range ae.Ranges {
					rs = append(rs, fmt.Sprintf("%d-%d", r[0], r[1]))
					got += int(r[1] - r[0] + 1)
				}
				lines = append(lines, fmt.Sprintf("%s dc=%d", strings.Join(rs, ","), ae.DeliveryCount))
			}
		}
		if len(lines) == 0 {
			return "nothing"
		}
		return strings.Join(lines, "\n")
	case "ack":
		var first, last int64
		var typ string
		d.ScanArgs(t, "first", &first)
		d.ScanArgs(t, "last", &last)
		d.ScanArgs(t, "type", &typ)
		types := map[string]AckType{"gap": AckGap, "accept": AckAccept, "release": AckRelease, "reject": AckReject, "renew": AckRenew}
		if err := s.a.Acknowledge(ctx, first, last, []AckType{types[typ]}); err != nil {
			return "error: " + err.Error()
		}
		return "ok"
	case "expire":
		s.clkMu.Lock()
		s.clock = s.clock.Add(time.Minute + time.Second)
		s.clkMu.Unlock()
		if err := s.a.ExpireLocks(ctx); err != nil {
			t.Fatal(err)
		}
		return "ok"
	case "close-a":
		if err := s.a.Close(ctx); err != nil {
			t.Fatal(err)
		}
		return "ok"
	case "open-a":
		s.openA(t)
		return "ok"
	case "attach-b":
		s.bs = newSink()
		h, err := attach(t, s.sub, DispatchOptions{Type: SubShared, PartitionIndex: -1}, "B", s.bs)
		if err != nil {
			t.Fatal(err)
		}
		s.bd, s.bc = h.Dispatcher(), h.Consumer()
		s.bN = 0
		return "ok"
	case "flow-b":
		var n int
		d.ScanArgs(t, "n", &n)
		s.bd.Flow(s.bc, int64(n))
		return "ok"
	case "b-got":
		settle()
		s.bs.mu.Lock()
		got := append([]Delivery(nil), s.bs.got[s.bN:]...)
		s.bN = len(s.bs.got)
		s.bs.mu.Unlock()
		if len(got) == 0 {
			return "nothing"
		}
		var lines []string
		for _, dl := range got {
			line := fmt.Sprintf("%d-%d redelivery=%d", dl.Entry.FirstIndex, dl.Entry.LastIndex(), dl.RedeliveryCount)
			if dl.AckSet != nil {
				line += fmt.Sprintf(" unacked=%b", dl.AckSet[0])
			}
			lines = append(lines, line)
		}
		return strings.Join(lines, "\n")
	case "nack-b", "ack-b":
		s.bs.mu.Lock()
		var ps []Position
		for _, dl := range s.bs.got {
			ps = append(ps, dl.Entry.Position)
		}
		s.bs.got, s.bN = nil, 0
		s.bs.mu.Unlock()
		if d.Cmd == "ack-b" {
			if err := s.bd.Ack(ctx, ps...); err != nil {
				t.Fatal(err)
			}
		} else {
			s.bd.Redeliver(s.bc, ps)
		}
		return "ok"
	case "state":
		settle()
		c := s.sub.Cursor()
		return fmt.Sprintf("next=%d backlog=%d locked=%d archived=%d", c.NextIndex(), c.Backlog(), s.a.Locked(), s.a.Archived())
	}
	t.Fatalf("unknown command %q", d.Cmd)
	return ""
}
