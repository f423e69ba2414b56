package console

// Bounded in-memory history: rateSampler keeps the broker's throughput of
// the last SampleCount intervals (and each topic's, up to MaxTracked
// topics), lagSampler every tracked subscription's
// total lag of the last LagCount intervals. Both are rings: memory is
// fixed once full. Nothing is persisted; a restart starts empty.

import (
	"sort"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

// ratePoint is the broker's throughput over one interval, both protocols.
type ratePoint struct {
	T                   time.Time
	InMsgs, OutMsgs     float64 // per second
	InBytes, OutBytes   float64 // per second
	StorageBytes, Count int64
}

type counters struct{ inMsgs, inBytes, outMsgs, outBytes, storage, count int64 }

func (c *counters) add(p *broker.Partition) {
	m, b := p.InCounters()
	c.inMsgs, c.inBytes = c.inMsgs+m, c.inBytes+b
	m, b = p.OutCounters()
	c.outMsgs, c.outBytes = c.outMsgs+m, c.outBytes+b
	c.storage += p.Stats().Bytes
	c.count++
}

// rateRing is one history: the broker's or one topic's.
type rateRing struct {
	last   counters
	lastAt time.Time
	ring[ratePoint]
}

// add records the counters' growth since the previous call (the first
// call only remembers them). A partition unloaded in between makes a sum
// shrink, counted as 0, not negative.
func (r *rateRing) add(now time.Time, c counters) {
	if !r.lastAt.IsZero() {
		dt := now.Sub(r.lastAt).Seconds()
		per := func(cur, prev int64) float64 {
			if dt <= 0 || cur < prev {
				return 0
			}
			return float64(cur-prev) / dt
		}
		l := r.last
		r.push(ratePoint{T: now,
			InMsgs: per(c.inMsgs, l.inMsgs), OutMsgs: per(c.outMsgs, l.outMsgs),
			InBytes: per(c.inBytes, l.inBytes), OutBytes: per(c.outBytes, l.outBytes),
			StorageBytes: c.storage, Count: c.count,
		})
	}
	r.last, r.lastAt = c, now
}

// rateSampler keeps the broker's throughput history and, for up to max
// topics (partitions summed), each topic's; a topic with no partition
// loaded for a whole history's length is forgotten.
type rateSampler struct {
	n, max int
	mu     struct {
		sync.Mutex
		total  rateRing
		topics map[string]*rateRing // by topic name (partitioned: the base name)
	}
}

func newRateSampler(n, maxTopics int) *rateSampler {
	s := &rateSampler{n: n, max: maxTopics}
	s.mu.total.ring = newRing[ratePoint](n)
	s.mu.topics = map[string]*rateRing{}
	return s
}

// sample adds one point from the loaded partitions' counters.
func (s *rateSampler) sample(now time.Time, parts []*broker.Partition) {
	var total counters
	byTopic := map[string]*counters{}
	for _, p := range parts {
		total.add(p)
		name := p.Name().Base().String()
		c := byTopic[name]
		if c == nil {
			c = &counters{}
			byTopic[name] = c
		}
		c.add(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.total.add(now, total)
	for name, c := range byTopic {
		r := s.mu.topics[name]
		if r == nil {
			if len(s.mu.topics) >= s.max {
				continue
			}
			r = &rateRing{ring: newRing[ratePoint](s.n)}
			s.mu.topics[name] = r
		}
		r.add(now, *c)
	}
	horizon := time.Duration(s.n) * time.Minute // generous: intervals are seconds
	for name, r := range s.mu.topics {
		if now.Sub(r.lastAt) > horizon {
			delete(s.mu.topics, name)
		}
	}
}

// points returns the broker's kept points, oldest first.
func (s *rateSampler) points() []ratePoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.total.ordered()
}

// topicPoints returns one topic's kept points, oldest first (nil if not
// tracked).
func (s *rateSampler) topicPoints(name string) []ratePoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.mu.topics[name]; r != nil {
		return r.ordered()
	}
	return nil
}

// ring keeps the last len(items) items pushed.
type ring[T any] struct {
	items []T
	next  int
	full  bool
}

func newRing[T any](n int) ring[T] { return ring[T]{items: make([]T, n)} }

func (r *ring[T]) push(v T) {
	r.items[r.next] = v
	r.next = (r.next + 1) % len(r.items)
	r.full = r.full || r.next == 0
}

// ordered copies the kept items, oldest first.
func (r *ring[T]) ordered() []T {
	if !r.full {
		return append([]T(nil), r.items[:r.next]...)
	}
	return append(append([]T(nil), r.items[r.next:]...), r.items[:r.next]...)
}

// LagPoint is one sample of a subscription's total lag (JSON of
// /console/api/lag).
type LagPoint struct {
	Time int64 `json:"time"` // unix ms
	Lag  int64 `json:"lag"`
}

type lagRing struct {
	ring[LagPoint]
	seen time.Time
}

type lagSampler struct {
	n, max int
	mu     struct {
		sync.Mutex
		subs map[string]*lagRing // by subscription name
	}
}

func newLagSampler(n, maxTracked int) *lagSampler {
	s := &lagSampler{n: n, max: maxTracked}
	s.mu.subs = map[string]*lagRing{}
	return s
}

// sample records each subscription's total lag now. A subscription gone
// for a whole history's length is forgotten; new ones beyond max are not
// tracked.
func (s *lagSampler) sample(now time.Time, subs []subscriptionView) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sv := range subs {
		r := s.mu.subs[sv.Name]
		if r == nil {
			if len(s.mu.subs) >= s.max {
				continue
			}
			r = &lagRing{ring: newRing[LagPoint](s.n)}
			s.mu.subs[sv.Name] = r
		}
		r.push(LagPoint{Time: now.UnixMilli(), Lag: sv.Lag})
		r.seen = now
	}
	horizon := time.Duration(s.n) * time.Minute // generous: intervals are seconds
	for name, r := range s.mu.subs {
		if now.Sub(r.seen) > horizon {
			delete(s.mu.subs, name)
		}
	}
}

// history returns the subscription's samples, oldest first (nil if not tracked).
func (s *lagSampler) history(name string) []LagPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.mu.subs[name]; r != nil {
		return r.ordered()
	}
	return nil
}

// all returns every tracked subscription's history.
func (s *lagSampler) all() map[string][]LagPoint {
	s.mu.Lock()
	names := make([]string, 0, len(s.mu.subs))
	for n := range s.mu.subs {
		names = append(names, n)
	}
	s.mu.Unlock()
	sort.Strings(names)
	out := make(map[string][]LagPoint, len(names))
	for _, n := range names {
		out[n] = s.history(n)
	}
	return out
}
