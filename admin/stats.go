package admin

// Topic statistics: GET .../{topic}/stats and .../{topic}/partitioned-stats
// in Pulsar's TopicStats / PartitionedTopicStats JSON. Every number comes
// from the broker's counters, the ones /metrics exports: counters count
// since the partition was loaded; rates are measured between reads at
// least 5 s apart (0 until one window has passed). A topic's out counters
// include Kafka fetches and Pulsar readers; a subscription's count what its
// dispatcher delivered to Pulsar consumers (Kafka group members fetch: their
// reads count at the topic). Publishers are the attached Pulsar producers,
// with their own rates; Kafka producers are not attached (their appends
// count at the topic).

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

type publisherStats struct {
	AccessMode      string            `json:"accessMode"`
	ProducerID      int64             `json:"producerId"`
	MsgRateIn       float64           `json:"msgRateIn"`
	MsgThroughputIn float64           `json:"msgThroughputIn"`
	AverageMsgSize  float64           `json:"averageMsgSize"`
	ProducerName    string            `json:"producerName"`
	Address         string            `json:"address"`
	ConnectedSince  string            `json:"connectedSince"`
	ClientVersion   string            `json:"clientVersion"`
	Metadata        map[string]string `json:"metadata"`
}

type consumerStats struct {
	ConsumerName     string            `json:"consumerName"`
	Address          string            `json:"address"`
	ConnectedSince   string            `json:"connectedSince"`
	ClientVersion    string            `json:"clientVersion"`
	MsgRateOut       float64           `json:"msgRateOut"`
	MsgThroughputOut float64           `json:"msgThroughputOut"`
	MsgOutCounter    int64             `json:"msgOutCounter"`
	BytesOutCounter  int64             `json:"bytesOutCounter"`
	AvailablePermits int64             `json:"availablePermits"`
	UnackedMessages  int64             `json:"unackedMessages"`
	Metadata         map[string]string `json:"metadata"`
}

type subscriptionStats struct {
	MsgRateOut             float64           `json:"msgRateOut"`
	MsgThroughputOut       float64           `json:"msgThroughputOut"`
	MsgOutCounter          int64             `json:"msgOutCounter"`
	BytesOutCounter        int64             `json:"bytesOutCounter"`
	MsgBacklog             int64             `json:"msgBacklog"`
	MsgBacklogNoDelayed    int64             `json:"msgBacklogNoDelayed"`
	BacklogSize            int64             `json:"backlogSize"`
	UnackedMessages        int64             `json:"unackedMessages"`
	Type                   string            `json:"type"`
	ActiveConsumerName     string            `json:"activeConsumerName,omitempty"`
	Consumers              []consumerStats   `json:"consumers"`
	IsDurable              bool              `json:"isDurable"`
	SubscriptionProperties map[string]string `json:"subscriptionProperties"`
}

type topicStats struct {
	MsgRateIn              float64                      `json:"msgRateIn"`
	MsgRateOut             float64                      `json:"msgRateOut"`
	MsgThroughputIn        float64                      `json:"msgThroughputIn"`
	MsgThroughputOut       float64                      `json:"msgThroughputOut"`
	MsgInCounter           int64                        `json:"msgInCounter"`
	BytesInCounter         int64                        `json:"bytesInCounter"`
	MsgOutCounter          int64                        `json:"msgOutCounter"`
	BytesOutCounter        int64                        `json:"bytesOutCounter"`
	AverageMsgSize         float64                      `json:"averageMsgSize"`
	StorageSize            int64                        `json:"storageSize"`
	BacklogSize            int64                        `json:"backlogSize"`
	Publishers             []publisherStats             `json:"publishers"`
	Subscriptions          map[string]subscriptionStats `json:"subscriptions"`
	Replication            map[string]struct{}          `json:"replication"`
	DeduplicationStatus    string                       `json:"deduplicationStatus"`
	TopicCreationTimeStamp int64                        `json:"topicCreationTimeStamp,omitempty"`
	Compaction             compactionStats              `json:"compaction"`
}

// compactionStats is Pulsar's CompactionStats (docs/compaction.md).
type compactionStats struct {
	LastCompactionRemovedEventCount   int64 `json:"lastCompactionRemovedEventCount"`
	LastCompactionSucceedTimestamp    int64 `json:"lastCompactionSucceedTimestamp"`
	LastCompactionFailedTimestamp     int64 `json:"lastCompactionFailedTimestamp"`
	LastCompactionDurationTimeInMills int64 `json:"lastCompactionDurationTimeInMills"`
}

func compactionStatsOf(st broker.CompactionStatus) compactionStats {
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixMilli()
	}
	return compactionStats{
		LastCompactionRemovedEventCount: st.LastRemoved, LastCompactionSucceedTimestamp: ms(st.LastSuccess),
		LastCompactionFailedTimestamp: ms(st.LastFailure), LastCompactionDurationTimeInMills: st.Last.Duration.Milliseconds(),
	}
}

type partitionedTopicStats struct {
	topicStats
	Metadata   partitionedMetadata   `json:"metadata"`
	Partitions map[string]topicStats `json:"partitions"`
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// partitionStats computes one partition's statistics.
func (s *server) partitionStats(r *http.Request, p *broker.Partition, created time.Time) topicStats {
	st := p.Stats()
	in, inBytes := p.InCounters()
	inRate, inThroughput := p.InRates()
	out, outBytes := p.OutCounters()
	outRate, outThroughput := p.OutRates()
	ts := topicStats{
		MsgRateIn:           inRate,
		MsgThroughputIn:     inThroughput,
		MsgInCounter:        in,
		BytesInCounter:      inBytes,
		MsgRateOut:          outRate,
		MsgThroughputOut:    outThroughput,
		MsgOutCounter:       out,
		BytesOutCounter:     outBytes,
		StorageSize:         st.Bytes,
		Publishers:          []publisherStats{},
		Subscriptions:       map[string]subscriptionStats{},
		Replication:         map[string]struct{}{},
		DeduplicationStatus: "Enabled",
		Compaction:          compactionStatsOf(p.CompactionStatus()),
	}
	if !created.IsZero() {
		ts.TopicCreationTimeStamp = created.UnixMilli()
	}
	if st.Messages > 0 {
		ts.AverageMsgSize = float64(st.Bytes) / float64(st.Messages)
	}
	for i, pi := range p.Producers() {
		ps := publisherStats{
			AccessMode: orDefault(pi.AccessMode, "Shared"), ProducerID: int64(i),
			ProducerName: pi.Name, Address: pi.Address, ConnectedSince: formatTime(pi.ConnectedSince),
			ClientVersion: pi.ClientVersion, Metadata: nonNilMap(pi.Metadata),
		}
		if pi.Counters != nil {
			msgs, bytes, rate, throughput := pi.Counters.Stats()
			ps.MsgRateIn, ps.MsgThroughputIn = rate, throughput
			if msgs > 0 {
				ps.AverageMsgSize = float64(bytes) / float64(msgs)
			}
		}
		ts.Publishers = append(ts.Publishers, ps)
	}
	for _, sub := range p.Subscriptions(r.Context()) {
		ss := subscriptionStatsOf(sub, ts.AverageMsgSize)
		ts.Subscriptions[sub.Name()] = ss
		ts.BacklogSize = max(ts.BacklogSize, ss.BacklogSize)
	}
	return ts
}

func subscriptionStatsOf(sub *broker.Subscription, avgMsgSize float64) subscriptionStats {
	backlog := sub.Cursor().Backlog()
	out, outBytes := sub.OutCounters()
	outRate, outThroughput := sub.OutRates()
	ss := subscriptionStats{
		MsgRateOut: outRate, MsgThroughputOut: outThroughput,
		MsgOutCounter: out, BytesOutCounter: outBytes,
		MsgBacklog: backlog, MsgBacklogNoDelayed: backlog,
		BacklogSize: int64(float64(backlog) * avgMsgSize),
		Type:        "Exclusive", Consumers: []consumerStats{}, IsDurable: true,
		SubscriptionProperties: nonNilMap(sub.Cursor().Properties()),
	}
	for _, ci := range sub.Consumers() {
		if ci.Type != "" {
			ss.Type = ci.Type
		}
		cs := consumerStats{
			ConsumerName: ci.Name, Address: ci.Address, ConnectedSince: formatTime(ci.ConnectedSince),
			ClientVersion: ci.ClientVersion, Metadata: nonNilMap(ci.Metadata),
		}
		if ci.Dispatch != nil {
			st := ci.Dispatch.Stats()
			cs.AvailablePermits, cs.UnackedMessages = st.Permits, st.Unacked
			cs.MsgOutCounter, cs.BytesOutCounter = st.MsgOut, st.BytesOut
			cs.MsgRateOut, cs.MsgThroughputOut = st.MsgRateOut, st.ByteRateOut
		}
		ss.UnackedMessages += cs.UnackedMessages
		ss.Consumers = append(ss.Consumers, cs)
	}
	if len(ss.Consumers) > 0 && (ss.Type == "Exclusive" || ss.Type == "Failover") {
		ss.ActiveConsumerName = ss.Consumers[0].ConsumerName
	}
	return ss
}

// topicStats answers one topic's statistics; for a partitioned topic's base
// name it answers the partitions' aggregate (Pulsar answers 404 there).
func (s *server) topicStats(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	var md broker.TopicMetadata
	if err == nil {
		md, err = s.svc.GetTopic(r.Context(), name)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if md.Partitions > 0 && md.Name == name {
		ps, err := s.aggregate(r, md, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ps.topicStats)
		return
	}
	p, err := s.svc.OpenPartition(r.Context(), name, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.partitionStats(r, p, md.Created))
}

// partitionedStats answers PartitionedTopicStats; perPartition (default
// true) adds each partition's own statistics.
func (s *server) partitionedStats(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	var md broker.TopicMetadata
	if err == nil {
		md, err = s.svc.GetTopic(r.Context(), name)
	}
	if err == nil && (md.Partitions == 0 || md.Name != name) {
		err = errNotPartitioned(name)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	perPartition := r.URL.Query().Get("perPartition") != "false"
	ps, err := s.aggregate(r, md, perPartition)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ps)
}

func (s *server) aggregate(r *http.Request, md broker.TopicMetadata, perPartition bool) (partitionedTopicStats, error) {
	agg := partitionedTopicStats{
		topicStats: topicStats{
			Publishers: []publisherStats{}, Subscriptions: map[string]subscriptionStats{},
			Replication: map[string]struct{}{}, DeduplicationStatus: "Enabled",
			TopicCreationTimeStamp: md.Created.UnixMilli(),
		},
		Metadata:   partitionedMetadata{Partitions: md.Partitions},
		Partitions: map[string]topicStats{},
	}
	var messages int64
	for i := range md.Partitions {
		pn := md.Name.Partition(i)
		p, err := s.svc.OpenPartition(r.Context(), pn, false)
		if err != nil {
			return agg, err
		}
		ts := s.partitionStats(r, p, md.Created)
		messages += p.Stats().Messages
		if perPartition {
			agg.Partitions[pn.String()] = ts
		}
		agg.MsgRateIn += ts.MsgRateIn
		agg.MsgThroughputIn += ts.MsgThroughputIn
		agg.MsgRateOut += ts.MsgRateOut
		agg.MsgThroughputOut += ts.MsgThroughputOut
		agg.MsgInCounter += ts.MsgInCounter
		agg.BytesInCounter += ts.BytesInCounter
		agg.MsgOutCounter += ts.MsgOutCounter
		agg.BytesOutCounter += ts.BytesOutCounter
		agg.StorageSize += ts.StorageSize
		agg.BacklogSize += ts.BacklogSize
		agg.Publishers = append(agg.Publishers, ts.Publishers...)
		for name, ss := range ts.Subscriptions {
			a, ok := agg.Subscriptions[name]
			if !ok {
				a = ss
				a.Consumers = append([]consumerStats{}, ss.Consumers...)
			} else {
				a.MsgRateOut += ss.MsgRateOut
				a.MsgThroughputOut += ss.MsgThroughputOut
				a.MsgOutCounter += ss.MsgOutCounter
				a.BytesOutCounter += ss.BytesOutCounter
				a.MsgBacklog += ss.MsgBacklog
				a.MsgBacklogNoDelayed += ss.MsgBacklogNoDelayed
				a.BacklogSize += ss.BacklogSize
				a.UnackedMessages += ss.UnackedMessages
				a.Consumers = append(a.Consumers, ss.Consumers...)
				if a.ActiveConsumerName == "" {
					a.ActiveConsumerName = ss.ActiveConsumerName
				}
			}
			agg.Subscriptions[name] = a
		}
	}
	if messages > 0 {
		agg.AverageMsgSize = float64(agg.StorageSize) / float64(messages)
	}
	sort.SliceStable(agg.Publishers, func(i, j int) bool { return agg.Publishers[i].ConnectedSince < agg.Publishers[j].ConnectedSince })
	for i := range agg.Publishers {
		agg.Publishers[i].ProducerID = int64(i)
	}
	return agg, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// errNotPartitioned is a 404, worded as Pulsar words it.
func errNotPartitioned(name broker.TopicName) error {
	return fmt.Errorf("%w: Partitioned Topic not found: %s is not a partitioned topic", broker.ErrTopicNotFound, name)
}

// internalStats is Pulsar's PersistentTopicInternalStats JSON: the managed
// ledger's ledgers and its cursors' positions ("ledger:entry").
type internalStats struct {
	EntriesAddedCounter        int64                  `json:"entriesAddedCounter"`
	NumberOfEntries            int64                  `json:"numberOfEntries"`
	TotalSize                  int64                  `json:"totalSize"`
	CurrentLedgerEntries       int64                  `json:"currentLedgerEntries"`
	CurrentLedgerSize          int64                  `json:"currentLedgerSize"`
	LastLedgerCreatedTimestamp string                 `json:"lastLedgerCreatedTimestamp"`
	LastConfirmedEntry         string                 `json:"lastConfirmedEntry"`
	State                      string                 `json:"state"`
	Ledgers                    []internalLedger       `json:"ledgers"`
	Cursors                    map[string]cursorStats `json:"cursors"`
	// Message indexes (kopernik): the Kafka log start and end offsets.
	FirstIndex int64 `json:"firstIndex"`
	NextIndex  int64 `json:"nextIndex"`
}

type internalLedger struct {
	LedgerID  int64 `json:"ledgerId"`
	Entries   int64 `json:"entries"`
	Size      int64 `json:"size"`
	Timestamp int64 `json:"timestamp"`
	Offloaded bool  `json:"offloaded"` // a verified copy is in tiered storage
	// LocalDeleted: the local files are gone, reads use tiered storage (kopernik).
	LocalDeleted bool `json:"localDeleted,omitempty"`
	// FirstIndex is the message index of the ledger's first message (kopernik).
	FirstIndex int64 `json:"firstIndex"`
}

type cursorStats struct {
	MarkDeletePosition string `json:"markDeletePosition"`
	ReadPosition       string `json:"readPosition"`
	CursorLedger       int64  `json:"cursorLedger"`
	State              string `json:"state"`
	// NextIndex is the first unacknowledged message index (kopernik: a
	// Kafka group's committed offset).
	NextIndex int64 `json:"nextIndex"`
	Backlog   int64 `json:"messagesBacklog"`
}

func (s *server) topicInternalStats(w http.ResponseWriter, r *http.Request) {
	p, _, found := s.partitionOf(w, r)
	if !found {
		return
	}
	st := p.Stats()
	out := internalStats{
		EntriesAddedCounter: st.Entries, NumberOfEntries: st.Entries, TotalSize: st.Bytes,
		LastConfirmedEntry: p.LastConfirmed().String(), State: "LedgerOpened",
		Ledgers: []internalLedger{}, Cursors: map[string]cursorStats{},
		FirstIndex: st.FirstIndex, NextIndex: st.NextIndex,
	}
	for _, l := range st.Ledgers {
		out.Ledgers = append(out.Ledgers, internalLedger{
			LedgerID: l.LedgerID, Entries: l.Entries, Size: l.Bytes, Timestamp: l.Created.UnixMilli(), FirstIndex: l.FirstIndex,
			Offloaded: l.Offloaded, LocalDeleted: l.LocalDeleted,
		})
	}
	if n := len(st.Ledgers); n > 0 {
		cur := st.Ledgers[n-1]
		out.CurrentLedgerEntries, out.CurrentLedgerSize = cur.Entries, cur.Bytes
		out.LastLedgerCreatedTimestamp = formatTime(cur.Created)
	}
	for _, sub := range p.Subscriptions(r.Context()) {
		c := sub.Cursor()
		out.Cursors[sub.Name()] = cursorStats{
			MarkDeletePosition: c.MarkDeletePosition().String(), ReadPosition: c.ReadPosition().String(),
			CursorLedger: -1, State: "Open", NextIndex: c.NextIndex(), Backlog: c.Backlog(),
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// messageIDByTime answers the id of the first message published (or
// event-timed) at or after the timestamp; 404 when there is none.
func (s *server) messageIDByTime(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	var ts int64
	if err == nil {
		if ts, err = strconv.ParseInt(r.PathValue("timestamp"), 10, 64); err != nil {
			err = fmt.Errorf("%w: timestamp %q", errBadRequest, r.PathValue("timestamp"))
		}
	}
	var p *broker.Partition
	if err == nil {
		p, err = s.svc.OpenPartition(r.Context(), name, false)
	}
	var e broker.Entry
	found := false
	if err == nil {
		e, found, err = p.FindByTime(r.Context(), ts)
	}
	if err == nil && !found {
		err = fmt.Errorf("%w: no message at or after %d in %s", broker.ErrOffsetOutOfRange, ts, name)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, messageID{LedgerID: e.Position.LedgerID, EntryID: e.Position.EntryID, PartitionIndex: name.PartitionIndex()})
}
