package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// clean builds a history of n acked writes per partition, read in full by
// a Kafka session, a redelivering Pulsar session and a final reader.
func clean(parts, n int) *History {
	h := NewHistory("t")
	for p := range parts {
		for o := range n {
			h.Wrote(Write{Producer: "k0", Value: val(p, o), Partition: int32(p), Outcome: Acked, Offset: int64(o)})
		}
	}
	h.Session(SessionInfo{Name: "kafka"})
	h.Session(SessionInfo{Name: "pulsar", Redelivers: true})
	h.Session(SessionInfo{Name: "final", Final: true})
	for p := range parts {
		h.Seeked("final", int32(p), 0)
		for o := 0; o < n; o += 3 {
			var recs []Record
			for i := o; i < min(o+3, n); i++ {
				recs = append(recs, Record{Offset: int64(i), Value: val(p, i)})
			}
			h.Polled("kafka", int32(p), recs)
			h.Polled("pulsar", int32(p), recs)
			h.Polled("final", int32(p), recs)
		}
		h.ReachedEnd("final", int32(p), int64(n))
	}
	return h
}

func val(p, o int) string { return fmt.Sprintf("v%d-%03d", p, o) }

func expectOnly(t *testing.T, r *Report, want map[string]int) {
	t.Helper()
	for _, cl := range Classes {
		if got := r.Count(cl); got != want[cl] {
			var buf bytes.Buffer
			r.WriteText(&buf)
			t.Errorf("%s: %d, want %d\n%s", cl, got, want[cl], buf.String())
		}
	}
	if r.Valid != (len(want) == 0) {
		t.Errorf("valid %v with %v", r.Valid, want)
	}
}

func TestCleanHistory(t *testing.T) {
	r := Check(clean(3, 10), Options{})
	expectOnly(t, r, nil)
	if r.Acked != 30 || r.AckedRead != 30 || r.FinalRead != 30 || r.ValuesRead != 30 {
		t.Errorf("counts: %+v", r)
	}
}

func TestRedeliveryIsNotAnAnomaly(t *testing.T) {
	h := clean(1, 10)
	// A Pulsar reconnect: 4..6 again, then 8 (7 was acked individually
	// and not redelivered), then 9.
	h.Polled("pulsar", 0, []Record{{Offset: 4, Value: val(0, 4)}, {Offset: 5, Value: val(0, 5)}, {Offset: 6, Value: val(0, 6)}, {Offset: 8, Value: val(0, 8)}})
	r := Check(h, Options{})
	expectOnly(t, r, nil)
	if r.Redeliveries != 1 {
		t.Errorf("redeliveries %d", r.Redeliveries)
	}
}

func TestLostWrite(t *testing.T) {
	h := NewHistory("t")
	h.Session(SessionInfo{Name: "c"})
	h.Wrote(Write{Value: "a", Outcome: Acked, Offset: 0})
	h.Wrote(Write{Value: "b", Outcome: Acked, Offset: 1})
	h.Wrote(Write{Value: "c", Outcome: Acked, Offset: 2})
	h.Wrote(Write{Value: "p", Outcome: Acked, Offset: -1, ID: "1:5:0"}) // a Pulsar ack, no offset
	h.Wrote(Write{Value: "x", Outcome: Unknown})                        // indeterminate: fine either way
	h.Seeked("c", 0, 0)
	// "b" is gone and "c" sits at its offset: the log lost b's offset's
	// content and the reader saw "a" then "c" at 0, 2 -> lost + skip.
	h.Polled("c", 0, []Record{{Offset: 0, Value: "a"}, {Offset: 2, Value: "c"}})
	h.ReachedEnd("c", 0, 3)
	r := Check(h, Options{})
	expectOnly(t, r, map[string]int{Lost: 2, Skipped: 1})
	if !strings.Contains(strings.Join(r.Anomalies[0].Examples, "\n"), "b ") {
		t.Errorf("examples %v", r.Anomalies[0].Examples)
	}
}

func TestUnseen(t *testing.T) {
	h := NewHistory("t")
	h.Wrote(Write{Value: "a", Outcome: Acked, Offset: 0})
	h.Wrote(Write{Value: "b", Outcome: Acked, Offset: 1})
	h.Polled("c", 0, []Record{{Offset: 0, Value: "a"}})
	expectOnly(t, Check(h, Options{}), map[string]int{Unseen: 1})
}

func TestDuplicate(t *testing.T) {
	h := clean(1, 5)
	// The same value again at offset 5: a retry that was not deduplicated.
	h.Polled("kafka", 0, []Record{{Offset: 5, Value: val(0, 4)}})
	expectOnly(t, Check(h, Options{}), map[string]int{Duplicate: 1})
}

func TestInconsistentOffset(t *testing.T) {
	h := clean(1, 5)
	h.Session(SessionInfo{Name: "pulsar2"})
	h.Seeked("pulsar2", 0, 3)
	h.Polled("pulsar2", 0, []Record{{Offset: 3, Value: "other"}, {Offset: 4, Value: val(0, 4)}})
	expectOnly(t, Check(h, Options{}), map[string]int{Inconsistent: 1})
}

func TestAckMismatch(t *testing.T) {
	h := NewHistory("t")
	h.Wrote(Write{Value: "a", Outcome: Acked, Offset: 0})
	h.Wrote(Write{Value: "b", Outcome: Acked, Offset: 7}) // told 7, stored at 1
	h.Wrote(Write{Value: "c", Partition: 0, Outcome: Acked, Offset: -1, ID: "3:1:0"})
	h.Polled("c", 0, []Record{{Offset: 0, Value: "a"}, {Offset: 1, Value: "b"}, {Offset: 2, Value: "c", ID: "3:2:0"}})
	expectOnly(t, Check(h, Options{}), map[string]int{AckMismatch: 2})
}

func TestNonMonotonic(t *testing.T) {
	h := clean(1, 6)
	// A Kafka session going back without a seek: twice (back to 2, and 2
	// again). After a seek, going back is fine.
	h.Polled("kafka", 0, []Record{{Offset: 2, Value: val(0, 2)}, {Offset: 2, Value: val(0, 2)}, {Offset: 3, Value: val(0, 3)}})
	h.Seeked("kafka", 0, 0)
	h.Polled("kafka", 0, []Record{{Offset: 0, Value: val(0, 0)}})
	expectOnly(t, Check(h, Options{}), map[string]int{NonMonotonic: 2})
}

func TestSkipped(t *testing.T) {
	h := clean(1, 8)
	h.Session(SessionInfo{Name: "g"})
	// A reader from the start whose first record is 2, then jumps 3 -> 6.
	h.Seeked("g", 0, 0)
	h.Polled("g", 0, []Record{{Offset: 2, Value: val(0, 2)}, {Offset: 3, Value: val(0, 3)}, {Offset: 6, Value: val(0, 6)}})
	r := Check(h, Options{})
	expectOnly(t, r, map[string]int{Skipped: 2})
	if r.SkippedOffsets != 4 {
		t.Errorf("skipped offsets %d, want 4", r.SkippedOffsets)
	}
	// A redelivering session skipping offsets it never saw is a skip too.
	h = clean(1, 8)
	h.Session(SessionInfo{Name: "pulsar2", Redelivers: true})
	h.Seeked("pulsar2", 0, 0)
	h.Polled("pulsar2", 0, []Record{{Offset: 0, Value: val(0, 0)}, {Offset: 5, Value: val(0, 5)}})
	expectOnly(t, Check(h, Options{}), map[string]int{Skipped: 1})
}

func TestSparseSkipsOnlyKnownOffsets(t *testing.T) {
	h := NewHistory("t")
	h.Wrote(Write{Value: "a", Outcome: Acked, Offset: 0})
	h.Wrote(Write{Value: "b", Outcome: Acked, Offset: 5}) // 1..4: transaction markers, say
	h.Polled("c", 0, []Record{{Offset: 0, Value: "a"}, {Offset: 5, Value: "b"}})
	expectOnly(t, Check(h, Options{Sparse: true}), nil)
	expectOnly(t, Check(h, Options{}), map[string]int{Skipped: 1})
}

func TestReportOutput(t *testing.T) {
	h := clean(1, 3)
	h.Polled("kafka", 0, []Record{{Offset: 1, Value: val(0, 1)}})
	r := Check(h, Options{Examples: 1})
	r.Extra = map[string]string{"cycles": "3"}
	var text, js bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "INVALID") || !strings.Contains(text.String(), "nonmonotonic") || !strings.Contains(text.String(), "cycles: 3") {
		t.Errorf("text:\n%s", text.String())
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Count(NonMonotonic) != 1 || back.Valid {
		t.Errorf("json round trip: %v %+v", err, back)
	}
}

// A redelivering session that jumps over offsets it receives later (the
// client dropped its queue on a reconnect while a later message from the
// old connection still got through) is not skipping; one that never
// receives them is.
func TestLateRedeliveryIsNotASkip(t *testing.T) {
	build := func(redeliver bool) *History {
		h := NewHistory("t")
		for o := range 6 {
			h.Wrote(Write{Producer: "k0", Value: val(0, o), Partition: 0, Outcome: Acked, Offset: int64(o)})
		}
		h.Session(SessionInfo{Name: "pulsar", Redelivers: true})
		h.Session(SessionInfo{Name: "final", Final: true})
		h.Seeked("final", 0, 0)
		var all []Record
		for o := range 6 {
			all = append(all, Record{Offset: int64(o), Value: val(0, o)})
		}
		h.Polled("final", 0, all)
		h.ReachedEnd("final", 0, 6)
		h.Seeked("pulsar", 0, 0)
		h.Polled("pulsar", 0, []Record{all[0], all[1], all[3]}) // 2 jumped over
		if redeliver {
			h.Polled("pulsar", 0, all) // from the mark-delete position again
		} else {
			h.Polled("pulsar", 0, all[4:])
		}
		return h
	}
	r := Check(build(true), Options{})
	expectOnly(t, r, nil)
	if r.LateRedelivered != 1 {
		t.Errorf("late redelivered %d, want 1", r.LateRedelivered)
	}
	r = Check(build(false), Options{})
	expectOnly(t, r, map[string]int{Skipped: 1})
	if r.SkippedOffsets != 1 {
		t.Errorf("skipped offsets %d, want 1", r.SkippedOffsets)
	}
}
