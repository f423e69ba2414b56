// Package verify is a Jepsen-style checker for a live kopernik broker.
//
// A workload (Run) drives Kafka and Pulsar producers and consumers on the same
// topics and records a History: what every producer sent and what it was told
// (acknowledged at partition/offset, failed, or unknown), and every poll a
// consumer session made (partition, offsets and values, in order). Check is a
// pure function over a History; it reports the anomaly classes Jepsen looks
// for in a log (lost writes, duplicates, inconsistent offsets, acknowledged
// offset mismatches, non-monotonic polls, skipped offsets) plus writes that no
// consumer has reached yet.
//
// Offsets are Kafka offsets, which in kopernik are the partition's message
// index and therefore dense: with no retention, every offset below the high
// watermark exists. Pulsar consumers report Message.Index() as the offset.
package verify

import (
	"sync"
	"time"
)

// Outcome is what a producer was told about one write.
type Outcome int

const (
	// Unknown: the producer got an error or no answer; the write may or
	// may not be in the log (Jepsen's :info).
	Unknown Outcome = iota
	// Acked: the broker acknowledged the write.
	Acked
	// Failed: the write definitely did not happen (it was never sent).
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Acked:
		return "acked"
	case Failed:
		return "failed"
	default:
		return "unknown"
	}
}

// Write is one record a producer sent. Values are unique across a history.
type Write struct {
	Producer string `json:"producer"`
	Value    string `json:"value"`
	// Key is the record's key (compacted workloads), or "".
	Key       string  `json:"key,omitempty"`
	Partition int32   `json:"partition"`
	Outcome   Outcome `json:"outcome"`
	// Offset is the acknowledged offset, -1 when the acknowledgement does
	// not carry one (Pulsar receipts carry a message id instead).
	Offset int64 `json:"offset"`
	// ID is the acknowledged Pulsar message id ("ledger:entry:batch"), or "".
	ID  string `json:"id,omitempty"`
	Err string `json:"err,omitempty"`
	// Seq orders the acknowledgement among the history's events.
	Seq int64 `json:"seq"`
}

// Record is one record a consumer received.
type Record struct {
	// Offset is the record's offset; -1 when the reader cannot tell it (a
	// Pulsar readCompacted reader receives compacted batches without the
	// gaps): the record counts as read, position checks skip it.
	Offset int64  `json:"offset"`
	Value  string `json:"value"`
	Key    string `json:"key,omitempty"`
	// ID is the Pulsar message id the record was received with, or "".
	ID string `json:"id,omitempty"`
}

// EventKind says what a consumer Event is.
type EventKind int

const (
	// Poll: records received from one partition, in order.
	Poll EventKind = iota
	// Seek: the session's position on the partition was set (a seek, an
	// assignment after a rebalance, a reconnect). Offset is the next offset
	// expected, or -1 when unknown; monotonicity starts over.
	Seek
	// End: the session read the partition up to Offset (exclusive), the
	// partition's end offset taken after the workload stopped.
	End
)

// Event is one consumer observation.
type Event struct {
	Kind      EventKind `json:"kind"`
	Session   string    `json:"session"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset,omitempty"`
	Records   []Record  `json:"records,omitempty"`
	Seq       int64     `json:"seq"`
}

// SessionInfo describes a consumer session.
type SessionInfo struct {
	Name string `json:"name"`
	// Redelivers: the consumer may legitimately receive records again
	// (a Pulsar durable subscription redelivers what was not yet
	// acknowledged after a reconnect). A backwards move is then counted as
	// a redelivery, not an anomaly, and offsets the session already saw do
	// not count as skipped.
	Redelivers bool `json:"redelivers,omitempty"`
	// Final: the session belongs to the final phase (fresh readers from
	// the start after the workload stopped).
	Final bool `json:"final,omitempty"`
}

// History is what a workload observed. Its methods are safe for concurrent
// use; Check reads a History no longer written to.
type History struct {
	mu       sync.Mutex
	seq      int64
	Start    time.Time     `json:"start"`
	Topic    string        `json:"topic"`
	Writes   []Write       `json:"writes"`
	Events   []Event       `json:"events"`
	Sessions []SessionInfo `json:"sessions"`
}

// NewHistory returns an empty history of a topic.
func NewHistory(topic string) *History {
	return &History{Topic: topic, Start: time.Now()}
}

// Session registers a consumer session.
func (h *History) Session(s SessionInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Sessions = append(h.Sessions, s)
}

// Wrote records a write and what its producer was told.
func (h *History) Wrote(w Write) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	w.Seq = h.seq
	if w.Outcome != Acked {
		w.Offset, w.ID = -1, ""
	}
	h.Writes = append(h.Writes, w)
}

// Polled records the records a session received from one partition.
func (h *History) Polled(session string, partition int32, recs []Record) {
	if len(recs) == 0 {
		return
	}
	h.add(Event{Kind: Poll, Session: session, Partition: partition, Records: recs})
}

// Seeked records that a session's position on a partition was set to
// offset (-1: unknown).
func (h *History) Seeked(session string, partition int32, offset int64) {
	h.add(Event{Kind: Seek, Session: session, Partition: partition, Offset: offset})
}

// ReachedEnd records that a session read a partition up to end (exclusive).
func (h *History) ReachedEnd(session string, partition int32, end int64) {
	h.add(Event{Kind: End, Session: session, Partition: partition, Offset: end})
}

func (h *History) add(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	e.Seq = h.seq
	h.Events = append(h.Events, e)
}
