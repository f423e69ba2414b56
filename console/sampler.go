package console

// Bounded in-memory history: rateSampler keeps the broker's throughput of
// the last SampleCount intervals, lagSampler every tracked subscription's
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

type counters struct{ inMsgs, inBytes, outMsgs, outBytes, storage int64 }

type rateSampler struct {
	mu struct {
		sync.Mutex
		last   counters
		lastAt time.Time
		ring   []ratePoint
		next   int
		full   bool
	}
}

func newRateSampler(n int) *rateSampler {
	s := &rateSampler{}
	s.mu.ring = make([]ratePoint, n)
	return s
}

// sample adds one point from the loaded partitions' counters. Rates are
// the counters' growth since the last sample; a partition unloaded in
// between makes a sum shrink, counted as 0, not negative.
func (s *rateSampler) sample(now time.Time, parts []*broker.Partition) {
	var c counters
	for _, p := range parts {
		m, b := p.InCounters()
		c.inMsgs, c.inBytes = c.inMsgs+m, c.inBytes+b
		m, b = p.OutCounters()
		c.outMsgs, c.outBytes = c.outMsgs+m, c.outBytes+b
		c.storage += p.Stats().Bytes
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mu.lastAt.IsZero() {
		dt := now.Sub(s.mu.lastAt).Seconds()
		per := func(cur, prev int64) float64 {
			if dt <= 0 || cur < prev {
				return 0
			}
			return float64(cur-prev) / dt
		}
		l := s.mu.last
		s.mu.ring[s.mu.next] = ratePoint{T: now,
			InMsgs: per(c.inMsgs, l.inMsgs), OutMsgs: per(c.outMsgs, l.outMsgs),
			InBytes: per(c.inBytes, l.inBytes), OutBytes: per(c.outBytes, l.outBytes),
			StorageBytes: c.storage, Count: int64(len(parts)),
		}
		s.mu.next = (s.mu.next + 1) % len(s.mu.ring)
		s.mu.full = s.mu.full || s.mu.next == 0
	}
	s.mu.last, s.mu.lastAt = c, now
}

// points returns the kept points, oldest first.
func (s *rateSampler) points() []ratePoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ringOrder(s.mu.ring, s.mu.next, s.mu.full)
}

// ringOrder copies a ring's kept items oldest first.
func ringOrder[T any](ring []T, next int, full bool) []T {
	if !full {
		return append([]T(nil), ring[:next]...)
	}
	return append(append([]T(nil), ring[next:]...), ring[:next]...)
}

// LagPoint is one sample of a subscription's total lag (JSON of
// /console/api/lag).
type LagPoint struct {
	Time int64 `json:"time"` // unix ms
	Lag  int64 `json:"lag"`
}

type lagRing struct {
	ring []LagPoint
	next int
	full bool
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
			r = &lagRing{ring: make([]LagPoint, s.n)}
			s.mu.subs[sv.Name] = r
		}
		r.ring[r.next] = LagPoint{Time: now.UnixMilli(), Lag: sv.Lag}
		r.next = (r.next + 1) % s.n
		r.full = r.full || r.next == 0
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
	r := s.mu.subs[name]
	if r == nil {
		return nil
	}
	return ringOrder(r.ring, r.next, r.full)
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
