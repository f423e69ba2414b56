package broker

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
)

// TestDispatchScript runs testdata/dispatch: a script of subscription
// dispatcher commands, consumers attached through Subscription.AddConsumer
// as the protocol handlers attach them, each followed by what the
// consumers observed (regenerate with -rewrite, then review the diff).
// Entries are named by the message index of their first message.
//
// Commands:
//
//	new type=shared|failover|exclusive|key_shared   fresh broker (files in a temp dir), subscription s
//	append n=N msgs=M [keys=K1,K2,...]              N entries of M messages (Key_Shared key per entry, cycling)
//	attach c=NAME [prio=P] [type=T]                 a consumer joins (of the script's type unless given)
//	flow c=NAME n=N                                 permits
//	got [n=N]                                       deliveries since the last got, per consumer (waits for N in all)
//	ack c=NAME at=I[,I...]                          individual acks of whole entries
//	ack-batch c=NAME at=I unacked=i[,i...]          batch-index ack (the listed messages stay unacknowledged)
//	ack-cumulative c=NAME at=I                      everything up to and including entry I
//	nack c=NAME [at=I,...]                          negative ack (all it holds without at)
//	close c=NAME                                    the consumer leaves
//	active                                          each consumer's last active notification (Failover)
//	state                                           cursor position, backlog, each consumer's permits and unacked
//	restart                                         consumers lost, broker and ledger files closed and reopened
func TestDispatchScript(t *testing.T) {
	datadriven.RunTest(t, "testdata/dispatch", func(t *testing.T, d *datadriven.TestData) string {
		return dispatchScript.run(t, d)
	})
}

type scriptConsumer struct {
	h       *ConsumerHandle
	s       *sink
	printed int
}

type dispatchScriptState struct {
	dir   string
	store metadata.Store
	f     *managedledger.Factory
	b     *Broker
	p     *Partition
	sub   *Subscription
	typ   SubscriptionType
	cons  map[string]*scriptConsumer
	at    map[int64]Position // entry by first message index
	seq   int
}

var dispatchScript = &dispatchScriptState{}

var scriptTypes = map[string]SubscriptionType{"shared": SubShared, "failover": SubFailover, "exclusive": SubExclusive, "key_shared": SubKeyShared}

// keyOf is the Key_Shared key of a script entry: its data up to '/'.
func keyOf(e *Entry) ([]byte, bool) {
	k, _, _ := bytes.Cut(e.Data, []byte("/"))
	return k, true
}

func (s *dispatchScriptState) open(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	f, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: s.store, Dir: s.dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, Options{Store: s.store, Ledgers: f})
	if err != nil {
		t.Fatal(err)
	}
	name, _ := ParseTopicName("d", "public", "default")
	p, err := b.OpenPartition(ctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := p.Subscription(ctx, "s", true, InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	s.f, s.b, s.p, s.sub = f, b, p, sub
	s.cons = map[string]*scriptConsumer{}
}

// shut closes the consumers, the broker and the ledger factory.
func (s *dispatchScriptState) shut() {
	for _, c := range s.cons {
		c.h.Close()
	}
	s.cons = nil
	if s.b != nil {
		s.b.Close()
		s.f.Close()
		s.b = nil
	}
}

func (s *dispatchScriptState) consumer(t *testing.T, d *datadriven.TestData) *scriptConsumer {
	t.Helper()
	var name string
	d.ScanArgs(t, "c", &name)
	c := s.cons[name]
	if c == nil {
		t.Fatalf("%s: no consumer %q", d.Pos, name)
	}
	return c
}

func (s *dispatchScriptState) positions(t *testing.T, d *datadriven.TestData) []Position {
	t.Helper()
	if !d.HasArg("at") {
		return nil
	}
	var list string
	d.ScanArgs(t, "at", &list)
	var out []Position
	for _, f := range strings.Split(list, ",") {
		i, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("%s: at=%s", d.Pos, list)
		}
		pos, ok := s.at[i]
		if !ok {
			t.Fatalf("%s: no entry starts at %d", d.Pos, i)
		}
		out = append(out, pos)
	}
	return out
}

func (s *dispatchScriptState) names() []string {
	return slices.Sorted(maps.Keys(s.cons))
}

// delivered counts every delivery made to the script's consumers.
func (s *dispatchScriptState) delivered() int {
	n := 0
	for _, c := range s.cons {
		c.s.mu.Lock()
		n += len(c.s.got) - c.printed
		c.s.mu.Unlock()
	}
	return n
}

func (s *dispatchScriptState) run(t *testing.T, d *datadriven.TestData) string {
	ctx := context.Background()
	switch d.Cmd {
	case "new":
		s.shut()
		var typ string
		d.ScanArgs(t, "type", &typ)
		var ok bool
		if s.typ, ok = scriptTypes[typ]; !ok {
			t.Fatalf("%s: type %q", d.Pos, typ)
		}
		s.dir, s.store = t.TempDir(), metadata.NewMemory()
		s.at, s.seq = map[int64]Position{}, 0
		s.open(t)
		t.Cleanup(s.shut)
		return "ok"
	case "append":
		var n, msgs int
		d.ScanArgs(t, "n", &n)
		d.ScanArgs(t, "msgs", &msgs)
		var keys []string
		if d.HasArg("keys") {
			var k string
			d.ScanArgs(t, "keys", &k)
			keys = strings.Split(k, ",")
		}
		var out []string
		for i := range n {
			data := fmt.Sprintf("/%d", s.seq)
			if keys != nil {
				data = keys[i%len(keys)] + data
			}
			s.seq++
			r, err := s.p.Append(ctx, AppendRequest{Format: FormatPulsar, MsgCount: int32(msgs), Data: []byte(data)})
			if err != nil {
				return err.Error()
			}
			s.at[r.Entry.FirstIndex] = r.Entry.Position
			out = append(out, fmt.Sprintf("%d-%d", r.Entry.FirstIndex, r.Entry.LastIndex()))
		}
		return strings.Join(out, " ")
	case "attach":
		var name string
		d.ScanArgs(t, "c", &name)
		prio := 0
		if d.HasArg("prio") {
			d.ScanArgs(t, "prio", &prio)
		}
		typ := s.typ
		if d.HasArg("type") {
			var ts string
			d.ScanArgs(t, "type", &ts)
			typ = scriptTypes[ts]
		}
		sk := newSink()
		h, err := s.sub.AddConsumer(ctx, ConsumerSpec{
			Info:     ConsumerInfo{Name: name, Type: typ.String()},
			Priority: prio,
			Dispatch: DispatchOptions{Type: typ, PartitionIndex: -1, Inspect: keyOf},
		}, sk)
		if err != nil {
			return "error: " + err.Error()
		}
		s.cons[name] = &scriptConsumer{h: h, s: sk}
		return "ok"
	case "flow":
		c := s.consumer(t, d)
		var n int64
		d.ScanArgs(t, "n", &n)
		c.h.Dispatcher().Flow(c.h.Consumer(), n)
		return "ok"
	case "got":
		if d.HasArg("n") {
			var n int
			d.ScanArgs(t, "n", &n)
			for deadline := time.Now().Add(5 * time.Second); s.delivered() < n; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d of %d deliveries", d.Pos, s.delivered(), n)
				}
			}
		}
		// Then nothing more for a while (what must not be delivered).
		time.Sleep(50 * time.Millisecond)
		var lines []string
		for _, name := range s.names() {
			c := s.cons[name]
			c.s.mu.Lock()
			got := c.s.got[c.printed:]
			c.printed = len(c.s.got)
			c.s.mu.Unlock()
			for _, dl := range got {
				line := fmt.Sprintf("%s: %d-%d", name, dl.Entry.FirstIndex, dl.Entry.LastIndex())
				if dl.RedeliveryCount > 0 {
					line += fmt.Sprintf(" redelivery=%d", dl.RedeliveryCount)
				}
				if dl.AckSet != nil {
					line += fmt.Sprintf(" unacked=%b", dl.AckSet[0])
				}
				if s.typ == SubKeyShared {
					k, _ := keyOf(&dl.Entry)
					line += " key=" + string(k)
				}
				lines = append(lines, line)
			}
		}
		if len(lines) == 0 {
			return "nothing"
		}
		return strings.Join(lines, "\n")
	case "ack", "ack-batch", "ack-cumulative", "nack":
		c := s.consumer(t, d)
		disp := c.h.Dispatcher()
		pos := s.positions(t, d)
		var err error
		switch d.Cmd {
		case "ack":
			err = disp.Ack(ctx, pos...)
		case "ack-batch":
			var un string
			d.ScanArgs(t, "unacked", &un)
			set := []uint64{0}
			for _, k := range strings.Split(un, ",") {
				if k == "" {
					continue
				}
				i, _ := strconv.Atoi(k)
				set[0] |= 1 << i
			}
			err = disp.AckBatchIndex(ctx, pos[0], set)
		case "ack-cumulative":
			err = disp.AckCumulative(ctx, pos[0])
		case "nack":
			disp.Redeliver(c.h.Consumer(), pos)
		}
		if err != nil {
			return "error: " + err.Error()
		}
		return "ok"
	case "close":
		c := s.consumer(t, d)
		c.h.Close()
		var name string
		d.ScanArgs(t, "c", &name)
		delete(s.cons, name)
		return "ok"
	case "active":
		time.Sleep(20 * time.Millisecond)
		var out []string
		for _, name := range s.names() {
			c := s.cons[name]
			c.s.mu.Lock()
			a := "-"
			if n := len(c.s.active); n > 0 {
				a = strconv.FormatBool(c.s.active[n-1])
			}
			c.s.mu.Unlock()
			out = append(out, name+"="+a)
		}
		return strings.Join(out, " ")
	case "state":
		cur := s.sub.Cursor()
		out := fmt.Sprintf("next=%d backlog=%d", cur.NextIndex(), cur.Backlog())
		for _, name := range s.names() {
			st := s.cons[name].h.Consumer().Stats()
			out += fmt.Sprintf(" %s(permits=%d unacked=%d)", name, st.Permits, st.Unacked)
		}
		return out
	case "restart":
		s.shut()
		s.open(t)
		return "ok"
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}
