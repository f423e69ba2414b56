package admin

// Subscriptions: .../persistent/{t}/{ns}/{topic}/subscriptions and
// .../subscription/{sub}[/...] (Pulsar's PersistentTopicsBase). On a
// partitioned topic's base name an operation applies to every partition.
// A Kafka consumer group is the subscription of the same name, so these
// endpoints list, create, delete and reset groups' committed offsets too.
//
// Message ids: Pulsar's {"ledgerId", "entryId", "partitionIndex"}.
// (-1, -1) is the earliest position and (MaxInt64, MaxInt64) the latest;
// a new subscription without a body starts at the latest. A concrete id
// on a partitioned topic's base name applies to the partition its
// partitionIndex names (every partition if -1); on create, the other
// partitions start at the earliest message, on reset they stay.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

func (s *server) subscriptionRoutes(mux *router) {
	sub := topicBase + "/{topic}/subscription/{sub}"
	mux.HandleFunc("GET "+topicBase+"/{topic}/subscriptions", s.listSubscriptions)
	mux.HandleFunc("PUT "+sub, s.createSubscription)
	mux.HandleFunc("DELETE "+sub, s.deleteSubscription)
	mux.HandleFunc("POST "+sub+"/resetcursor/{timestamp}", s.resetCursorToTime)
	mux.HandleFunc("POST "+sub+"/resetcursor", s.resetCursorToMessageID)
	mux.HandleFunc("POST "+sub+"/skip_all", s.skipAll)
	mux.HandleFunc("POST "+sub+"/skip/{n}", s.skipMessages)
	mux.HandleFunc("POST "+sub+"/expireMessages/{seconds}", s.expireMessages)
}

// partitionsOf resolves the request's topic to the partitions an operation
// applies to: all partitions of a partitioned topic's base name, else the
// topic (or partition) itself.
func (s *server) partitionsOf(r *http.Request) ([]broker.TopicName, error) {
	name, err := topicOf(r)
	if err != nil {
		return nil, err
	}
	md, err := s.svc.GetTopic(r.Context(), name)
	if err != nil {
		return nil, err
	}
	if md.Partitions == 0 || md.Name != name {
		return []broker.TopicName{name}, nil
	}
	out := make([]broker.TopicName, md.Partitions)
	for i := range out {
		out[i] = name.Partition(i)
	}
	return out, nil
}

func (s *server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	parts, err := s.partitionsOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	seen := map[string]bool{}
	names := []string{}
	for _, pn := range parts {
		p, err := s.svc.OpenPartition(r.Context(), pn, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, sub := range p.Subscriptions(r.Context()) {
			if !seen[sub.Name()] {
				seen[sub.Name()] = true
				names = append(names, sub.Name())
			}
		}
	}
	writeJSON(w, http.StatusOK, names)
}

// where says where a subscription starts or is reset to.
type where struct {
	initial   broker.InitialPosition // used when pos is nil
	pos       *broker.Position
	partition int // partition the position belongs to; -1: every partition
}

// whereOf interprets a message id body (absent: latest).
func whereOf(id *messageID) where {
	switch {
	case id == nil || id.LedgerID == math.MaxInt64:
		return where{initial: broker.InitialLatest, partition: -1}
	case id.LedgerID < 0:
		return where{initial: broker.InitialEarliest, partition: -1}
	}
	pos := broker.Position{LedgerID: id.LedgerID, EntryID: id.EntryID}
	if id.IsExcluded {
		pos.EntryID++
	}
	return where{pos: &pos, partition: id.PartitionIndex}
}

// applies reports whether a position given for w.partition concerns pn.
func (w where) applies(pn broker.TopicName) bool {
	return w.pos != nil && (w.partition < 0 || pn.PartitionIndex() < 0 || pn.PartitionIndex() == w.partition)
}

func (s *server) createSubscription(w http.ResponseWriter, r *http.Request) {
	var id messageID
	present, err := readBody(r, &id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	at := whereOf(nil)
	if present {
		at = whereOf(&id)
	}
	parts, err := s.partitionsOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	subName := r.PathValue("sub")
	ctx := r.Context()
	partitions := make([]*broker.Partition, len(parts))
	for i, pn := range parts {
		p, err := s.svc.OpenPartition(ctx, pn, false)
		if err == nil {
			_, err = p.Subscription(ctx, subName, false, broker.InitialLatest)
			if err == nil {
				err = fmt.Errorf("%w: subscription %s on %s", broker.ErrAlreadyExists, subName, pn)
			} else if errors.Is(err, broker.ErrSubscriptionNotFound) {
				err = nil
			}
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		partitions[i] = p
	}
	for i, p := range partitions {
		start := at.initial
		if at.pos != nil {
			start = broker.InitialEarliest
		}
		sub, err := p.Subscription(ctx, subName, true, start)
		if err == nil && at.applies(parts[i]) {
			err = sub.ResetTo(ctx, *at.pos)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	ok(w)
}

func (s *server) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	parts, err := s.partitionsOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	force := boolQuery(r, "force")
	found := false
	for _, pn := range parts {
		p, err := s.svc.OpenPartition(r.Context(), pn, false)
		if err == nil {
			err = p.DeleteSubscription(r.Context(), r.PathValue("sub"), force)
		}
		if errors.Is(err, broker.ErrSubscriptionNotFound) && len(parts) > 1 {
			continue // partitions added after the subscription was made
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		found = true
	}
	if !found {
		s.writeError(w, r, fmt.Errorf("%w: %s", broker.ErrSubscriptionNotFound, r.PathValue("sub")))
		return
	}
	ok(w)
}

// eachSubscription runs fn on the subscription of every partition the
// request names; a partition lacking it is skipped unless none has it.
func (s *server) eachSubscription(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context, pn broker.TopicName, p *broker.Partition, sub *broker.Subscription) error) {
	parts, err := s.partitionsOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	found := false
	for _, pn := range parts {
		p, err := s.svc.OpenPartition(r.Context(), pn, false)
		var sub *broker.Subscription
		if err == nil {
			sub, err = p.Subscription(r.Context(), r.PathValue("sub"), false, broker.InitialLatest)
		}
		if errors.Is(err, broker.ErrSubscriptionNotFound) && len(parts) > 1 {
			continue
		}
		if err == nil {
			err = fn(r.Context(), pn, p, sub)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		found = true
	}
	if !found {
		s.writeError(w, r, fmt.Errorf("%w: %s", broker.ErrSubscriptionNotFound, r.PathValue("sub")))
		return
	}
	ok(w)
}

// resetCursorToTime moves the subscription to the first message published
// (or event-timed) at or after the timestamp (unix ms); past the end if none.
func (s *server) resetCursorToTime(w http.ResponseWriter, r *http.Request) {
	ts, err := strconv.ParseInt(r.PathValue("timestamp"), 10, 64)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: timestamp %q", errBadRequest, r.PathValue("timestamp")))
		return
	}
	s.eachSubscription(w, r, func(ctx context.Context, _ broker.TopicName, p *broker.Partition, sub *broker.Subscription) error {
		e, found, err := p.FindByTime(ctx, ts)
		if err != nil {
			return err
		}
		if !found {
			return sub.ResetTo(ctx, broker.Latest)
		}
		return sub.ResetTo(ctx, e.Position)
	})
}

func (s *server) resetCursorToMessageID(w http.ResponseWriter, r *http.Request) {
	var id messageID
	present, err := readBody(r, &id)
	if err == nil && !present {
		err = fmt.Errorf("%w: message id required", errBadRequest)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	at := whereOf(&id)
	s.eachSubscription(w, r, func(ctx context.Context, pn broker.TopicName, p *broker.Partition, sub *broker.Subscription) error {
		switch {
		case at.pos == nil && at.initial == broker.InitialEarliest:
			return sub.ResetTo(ctx, broker.Earliest)
		case at.pos == nil:
			return sub.ResetTo(ctx, broker.Latest)
		case at.applies(pn):
			return sub.ResetTo(ctx, *at.pos)
		}
		return nil
	})
}

// skipAll clears the backlog: everything published so far is acknowledged.
func (s *server) skipAll(w http.ResponseWriter, r *http.Request) {
	s.eachSubscription(w, r, func(ctx context.Context, _ broker.TopicName, _ *broker.Partition, sub *broker.Subscription) error {
		return sub.ResetTo(ctx, broker.Latest)
	})
}

// skipMessages acknowledges the next n messages after the first
// unacknowledged one (at most up to the end of the log).
func (s *server) skipMessages(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 0 {
		s.writeError(w, r, fmt.Errorf("%w: message count %q", errBadRequest, r.PathValue("n")))
		return
	}
	s.eachSubscription(w, r, func(ctx context.Context, _ broker.TopicName, p *broker.Partition, sub *broker.Subscription) error {
		next := min(sub.Cursor().NextIndex()+n, p.NextIndex())
		return sub.Cursor().SetNextIndex(ctx, next)
	})
}

// expireMessages acknowledges every message published (or event-timed)
// more than the given seconds ago; it never moves the subscription back.
func (s *server) expireMessages(w http.ResponseWriter, r *http.Request) {
	secs, err := strconv.ParseInt(r.PathValue("seconds"), 10, 64)
	if err != nil || secs < 0 {
		s.writeError(w, r, fmt.Errorf("%w: expiry %q", errBadRequest, r.PathValue("seconds")))
		return
	}
	cutoff := time.Now().Add(-time.Duration(secs) * time.Second).UnixMilli()
	s.eachSubscription(w, r, func(ctx context.Context, _ broker.TopicName, p *broker.Partition, sub *broker.Subscription) error {
		next := p.NextIndex()
		if e, found, err := p.FindByTime(ctx, cutoff); err != nil {
			return err
		} else if found {
			next = e.FirstIndex
		}
		if next <= sub.Cursor().NextIndex() {
			return nil
		}
		return sub.Cursor().SetNextIndex(ctx, next)
	})
}
