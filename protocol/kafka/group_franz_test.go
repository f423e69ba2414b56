package kafka

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceN produces values "0".."n-1" (keys spread them over partitions).
func produceN(t testing.TB, ctx context.Context, addr, topic string, from, n int) {
	t.Helper()
	p := newKgo(t, addr, kgo.DefaultProduceTopic(topic))
	defer p.Close()
	var rs []*kgo.Record
	for i := from; i < from+n; i++ {
		rs = append(rs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// seen counts how often each value was consumed.
type seen struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *seen) add(v string) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[v]++
	s.mu.Unlock()
}

// check reports missing and duplicated values of 0..n-1.
func (s *seen) check(n int) (missing, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range n {
		switch c := s.m[strconv.Itoa(i)]; {
		case c == 0:
			missing++
		case c > 1:
			dups++
		}
	}
	return
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// groupMember runs a kgo group consumer that commits what it polled before
// allowing a rebalance, so that no record is consumed twice.
type kgoMember struct {
	stop chan struct{}
	done chan error
}

func startKgoMember(t testing.TB, addr, group, topic string, s *seen, opts ...kgo.Opt) *kgoMember {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(), kgo.DisableAutoCommit(),
		kgo.HeartbeatInterval(100 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m := &kgoMember{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer cl.Close()
		for {
			select {
			case <-m.stop:
				m.done <- nil
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			fs := cl.PollFetches(ctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) { s.add(string(r.Value)) })
			if len(fs.Records()) > 0 {
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := cl.CommitUncommittedOffsets(cctx)
				cancel()
				if err != nil {
					cl.AllowRebalance()
					m.done <- fmt.Errorf("commit: %w", err)
					return
				}
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(func() { m.close() })
	return m
}

func (m *kgoMember) close() error {
	select {
	case <-m.stop:
		return nil
	default:
	}
	close(m.stop)
	return <-m.done
}

func TestGroupFranzMembersComeAndGo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{
		{"eager-range", kgo.RangeBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			ctx := testCtx(t)
			topic, group := "cg-"+tc.name, "g-"+tc.name
			adm := kadm.NewClient(newKgo(t, s.addr))
			if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			var got seen
			const batches, per = 8, 100
			produced := make(chan struct{})
			go func() {
				defer close(produced)
				for b := range batches {
					produceN(t, ctx, s.addr, topic, b*per, per)
					time.Sleep(150 * time.Millisecond)
				}
			}()
			bal := kgo.Balancers(tc.balancer)
			m1 := startKgoMember(t, s.addr, group, topic, &got, bal)
			time.Sleep(300 * time.Millisecond)
			m2 := startKgoMember(t, s.addr, group, topic, &got, bal)
			time.Sleep(300 * time.Millisecond)
			m3 := startKgoMember(t, s.addr, group, topic, &got, bal)
			time.Sleep(300 * time.Millisecond)
			if err := m1.close(); err != nil {
				t.Fatal(err)
			}
			<-produced
			m4 := startKgoMember(t, s.addr, group, topic, &got, bal)
			time.Sleep(200 * time.Millisecond)
			if err := m2.close(); err != nil {
				t.Fatal(err)
			}
			checkFor(t, 15*time.Second, func() error {
				if n := got.count(); n < batches*per {
					return fmt.Errorf("consumed %d distinct of %d", n, batches*per)
				}
				return nil
			})
			for _, m := range []*kgoMember{m3, m4} {
				if err := m.close(); err != nil {
					t.Fatal(err)
				}
			}
			if missing, dups := got.check(batches * per); missing != 0 || dups != 0 {
				t.Fatalf("missing %d, consumed twice %d", missing, dups)
			}
			// Lag is zero: commits are the subscriptions' positions.
			lag, err := adm.Lag(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			if l := lag[group]; l.Error() != nil || l.Lag.Total() != 0 {
				t.Fatalf("lag: %v %d", l.Error(), l.Lag.Total())
			}
		})
	}
}

// TestGroupFranzVanishedMemberExpires: a static member that goes away
// without leaving (static members do not send LeaveGroup) is expired after
// its session timeout and its partitions move to the remaining member,
// which resumes from the commits: nothing lost, nothing consumed twice.
func TestGroupFranzVanishedMemberExpires(t *testing.T) {
	defer func(d time.Duration) { groupMinSessionTimeout = d }(groupMinSessionTimeout)
	groupMinSessionTimeout = 500 * time.Millisecond
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "vanish"); err != nil {
		t.Fatal(err)
	}
	var got seen
	session := kgo.SessionTimeout(time.Second)
	m1 := startKgoMember(t, s.addr, "vg", "vanish", &got, kgo.InstanceID("s1"), session)
	m2 := startKgoMember(t, s.addr, "vg", "vanish", &got, session)
	checkFor(t, 10*time.Second, func() error {
		if dg := describeOne(t, adm, "vg"); dg.State != "Stable" || len(dg.Members) != 2 {
			return fmt.Errorf("group %s with %d members", dg.State, len(dg.Members))
		}
		return nil
	})
	produceN(t, ctx, s.addr, "vanish", 0, 200)
	checkFor(t, 10*time.Second, func() error {
		if n := got.count(); n < 200 {
			return fmt.Errorf("consumed %d of 200", n)
		}
		return nil
	})
	if err := m1.close(); err != nil {
		t.Fatal(err)
	}
	produceN(t, ctx, s.addr, "vanish", 200, 200)
	checkFor(t, 10*time.Second, func() error {
		dg := describeOne(t, adm, "vg")
		if dg.State != "Stable" || len(dg.Members) != 1 || dg.Members[0].InstanceID != nil {
			return fmt.Errorf("group %s with %+v", dg.State, dg.Members)
		}
		if id := dg.Members[0].ClientID; id != "kgo" { // franz-go's default client.id
			return fmt.Errorf("member client id %q", id)
		}
		if n := got.count(); n < 400 {
			return fmt.Errorf("consumed %d of 400", n)
		}
		return nil
	})
	if err := m2.close(); err != nil {
		t.Fatal(err)
	}
	if missing, dups := got.check(400); missing != 0 || dups != 0 {
		t.Fatalf("missing %d, consumed twice %d", missing, dups)
	}
}
