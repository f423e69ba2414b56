package verify

import (
	"fmt"
	"testing"
)

// compactedHistory: 30 acked writes of 3 keys on one partition (key i%3 at
// offset i); a live session read everything raw, the final reader the
// compacted view (the last write of each key: offsets 27, 28, 29), and a
// Pulsar compacted reader the same without offsets.
func compactedHistory() *History {
	h := NewHistory("t")
	for o := range 30 {
		h.Wrote(Write{Producer: "k0", Value: fmt.Sprintf("v%02d", o), Key: fmt.Sprintf("key%d", o%3), Outcome: Acked, Offset: int64(o)})
	}
	h.Session(SessionInfo{Name: "live"})
	h.Session(SessionInfo{Name: "final", Final: true})
	h.Session(SessionInfo{Name: "pulsar-final", Final: true})
	h.Seeked("live", 0, 0)
	for o := range 30 {
		h.Polled("live", 0, []Record{{Offset: int64(o), Value: fmt.Sprintf("v%02d", o), Key: fmt.Sprintf("key%d", o%3)}})
	}
	h.Seeked("final", 0, 0)
	h.Seeked("pulsar-final", 0, 0)
	for o := 27; o < 30; o++ {
		h.Polled("final", 0, []Record{{Offset: int64(o), Value: fmt.Sprintf("v%02d", o), Key: fmt.Sprintf("key%d", o%3)}})
		h.Polled("pulsar-final", 0, []Record{{Offset: -1, Value: fmt.Sprintf("v%02d", o), Key: fmt.Sprintf("key%d", o%3)}})
	}
	h.ReachedEnd("final", 0, 30)
	return h
}

func TestCheckCompacted(t *testing.T) {
	r := Check(compactedHistory(), Options{Compacted: true})
	if !r.Valid || r.Superseded != 0 || r.AckedRead != 30 {
		t.Fatalf("clean compacted history: %+v", r)
	}
	// The same history read only by the compacted readers: the 27
	// superseded writes are no anomaly.
	h := compactedHistory()
	var events []Event
	for _, e := range h.Events {
		if e.Session != "live" {
			events = append(events, e)
		}
	}
	h.Events = events
	if r := Check(h, Options{Compacted: true}); !r.Valid || r.Superseded != 27 {
		t.Fatalf("compacted view only: %+v", r)
	}
	// Without the compacted mode those gaps are skips and the writes lost.
	if r := Check(h, Options{}); r.Valid || r.Count(Lost) == 0 || r.Count(Skipped) == 0 {
		t.Fatalf("dense check of a compacted history found nothing: %+v", r)
	}

	// A key's latest value lost: the final readers miss v29 (key2), and
	// nothing later of key2 was read.
	h = compactedHistory()
	h.Events = nil
	h.Seeked("final", 0, 0)
	h.Polled("final", 0, []Record{{Offset: 26, Value: "v26", Key: "key2"}, {Offset: 27, Value: "v27", Key: "key0"}, {Offset: 28, Value: "v28", Key: "key1"}})
	h.ReachedEnd("final", 0, 30)
	if r := Check(h, Options{Compacted: true}); r.Count(Lost) != 1 {
		t.Fatalf("lost latest value not found: %+v", r.Anomalies)
	}

	// The latest value read by a live session but not by the final
	// readers: lost by compaction.
	h = compactedHistory()
	h.Events = nil
	h.Seeked("live", 0, 0)
	h.Polled("live", 0, []Record{{Offset: 29, Value: "v29", Key: "key2"}})
	h.Seeked("final", 0, 0)
	h.Polled("final", 0, []Record{{Offset: 26, Value: "v26", Key: "key2"}, {Offset: 27, Value: "v27", Key: "key0"}, {Offset: 28, Value: "v28", Key: "key1"}})
	h.ReachedEnd("final", 0, 30)
	if r := Check(h, Options{Compacted: true}); r.Count(Lost) != 1 {
		t.Fatalf("latest value missing from the final read not found: %+v", r.Anomalies)
	}

	// A kept record whose offset changed.
	h = compactedHistory()
	h.Events = nil
	h.Seeked("final", 0, 0)
	h.Polled("final", 0, []Record{{Offset: 25, Value: "v27", Key: "key0"}, {Offset: 28, Value: "v28", Key: "key1"}, {Offset: 29, Value: "v29", Key: "key2"}})
	h.ReachedEnd("final", 0, 30)
	if r := Check(h, Options{Compacted: true}); r.Count(AckMismatch) != 1 {
		t.Fatalf("moved record not found: %+v", r.Anomalies)
	}

	// A live session jumping over a record that was kept: a skip.
	h = compactedHistory()
	h.Seeked("live2", 0, 0)
	h.Polled("live2", 0, []Record{{Offset: 26, Value: "v26", Key: "key2"}, {Offset: 29, Value: "v29", Key: "key2"}})
	if r := Check(h, Options{Compacted: true}); r.Count(Skipped) != 1 {
		t.Fatalf("skip over a kept record not found: %+v", r.Anomalies)
	}
}
