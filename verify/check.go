package verify

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Anomaly classes, in report order.
const (
	// Lost: an acknowledged write no consumer ever read, although a
	// consumer read past its offset or read its partition to the end
	// after it was acknowledged.
	Lost = "lost"
	// Duplicate: one value at two offsets (for idempotent producers and
	// deduplicated Pulsar producers there must be none).
	Duplicate = "duplicate"
	// Inconsistent: two different values read at one offset (by different
	// consumers, sessions or protocols).
	Inconsistent = "inconsistent-offset"
	// AckMismatch: a value read, but never at the partition/offset (or the
	// Pulsar message id) it was acknowledged at.
	AckMismatch = "ack-mismatch"
	// NonMonotonic: within one consumer session a partition's offset did
	// not increase between consecutive records, with no seek in between.
	NonMonotonic = "nonmonotonic"
	// Skipped: within one session, consecutive records of a partition jump
	// over offsets that exist in the log. In a session that redelivers
	// (Pulsar subscriptions), a jump is a skip only if the session never
	// receives the jumped-over offsets at all: receiving them later, by
	// redelivery after a reconnect, is the at-least-once order such a
	// session allows (Report.LateRedelivered counts those jumps).
	Skipped = "skipped"
	// Unseen: acknowledged, not read, and no consumer reached its offset.
	Unseen = "unseen"
)

// Classes lists the anomaly classes in report order.
var Classes = []string{Lost, Duplicate, Inconsistent, AckMismatch, NonMonotonic, Skipped, Unseen}

// Options tune Check.
type Options struct {
	// Examples is how many examples to keep per class (default 10).
	Examples int
	// Sparse: offsets may have gaps (a log that is not kopernik's), so a
	// gap is a skip only over offsets known to exist (read or acknowledged
	// somewhere). The default, dense, counts every gap.
	Sparse bool
	// Compacted checks a compacted topic (Config.Compacted): gaps are
	// legal where compaction removed records, so a jump is a skip only over
	// an offset the final readers read (it was kept, so every reader
	// passing it must have got it); an acknowledged write nobody read is
	// lost only if no record of its key is read on its partition that may
	// be later (a later offset, or unknown order): otherwise it was
	// superseded (Report.Superseded); and the acknowledged write at the
	// highest offset known for its key is lost if the final readers did
	// not read it. Offsets of kept records are checked as always
	// (ack-mismatch, inconsistent-offset, duplicate).
	Compacted bool
}

// Anomaly is the count and some examples of one class.
type Anomaly struct {
	Class    string   `json:"class"`
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

// Report is what Check found.
type Report struct {
	Topic        string `json:"topic"`
	Writes       int    `json:"writes"`
	Acked        int    `json:"acked"`
	Unknown      int    `json:"unknown"`
	Failed       int    `json:"failed"`
	Sessions     int    `json:"sessions"`
	Polls        int    `json:"polls"`
	RecordsRead  int    `json:"records_read"`
	ValuesRead   int    `json:"values_read"`
	AckedRead    int    `json:"acked_read"`
	FinalRead    int    `json:"acked_read_by_final_readers"`
	Redeliveries int    `json:"redeliveries"`
	// LateRedelivered counts jumps in redelivering sessions whose offsets
	// the session received later (see Skipped): not anomalies.
	LateRedelivered int `json:"late_redelivered,omitempty"`
	// Superseded counts acknowledged writes nobody read because a later
	// record of their key replaced them (Options.Compacted).
	Superseded int `json:"superseded,omitempty"`
	// SkippedOffsets is the number of offsets jumped over by all skips.
	SkippedOffsets int `json:"skipped_offsets"`
	// SkipsBySession counts the skips of each session that had any.
	SkipsBySession map[string]int `json:"skips_by_session,omitempty"`
	Anomalies      []Anomaly      `json:"anomalies"`
	Valid          bool           `json:"valid"`
	// Extra holds facts the caller adds (duration, faults, command).
	Extra map[string]string `json:"extra,omitempty"`
}

// Count returns the number of anomalies of a class.
func (r *Report) Count(class string) int {
	for _, a := range r.Anomalies {
		if a.Class == class {
			return a.Count
		}
	}
	return 0
}

type pos struct {
	p int32
	o int64
}

func (p pos) String() string { return fmt.Sprintf("%d/%d", p.p, p.o) }

type checker struct {
	r       *Report
	n       int
	classes map[string]*Anomaly
}

func (c *checker) add(class, format string, args ...any) {
	a := c.classes[class]
	a.Count++
	if len(a.Examples) < c.n {
		a.Examples = append(a.Examples, fmt.Sprintf(format, args...))
	}
}

// Check looks for anomalies in a history. It is pure: the same history
// always gives the same report.
func Check(h *History, opt Options) *Report {
	if opt.Examples <= 0 {
		opt.Examples = 10
	}
	r := &Report{Topic: h.Topic, Writes: len(h.Writes), Sessions: len(h.Sessions)}
	c := &checker{r: r, n: opt.Examples, classes: map[string]*Anomaly{}}
	for _, cl := range Classes {
		c.classes[cl] = &Anomaly{Class: cl}
	}
	sessions := map[string]SessionInfo{}
	for _, s := range h.Sessions {
		sessions[s.Name] = s
	}

	// Pass 1: where every value was read, what every offset holds.
	at := map[string]map[pos]bool{}        // value -> positions read
	ids := map[string]map[string]bool{}    // value -> Pulsar ids read
	holds := map[pos]map[string][]string{} // position -> value -> sessions
	byFinal := map[string]bool{}           // values read by final sessions
	maxRead := map[int32]int64{}
	exists := map[pos]bool{}
	finalAt := map[pos]bool{} // positions the final sessions read
	type keyed struct {
		p   int32
		key string
	}
	byKey := map[keyed][]Record{} // records read, per partition and key
	readSomewhere := map[string]bool{}
	for _, e := range h.Events {
		if e.Kind != Poll {
			continue
		}
		r.Polls++
		for _, rec := range e.Records {
			r.RecordsRead++
			if opt.Compacted {
				byKey[keyed{e.Partition, rec.Key}] = append(byKey[keyed{e.Partition, rec.Key}], rec)
			}
			if sessions[e.Session].Final {
				byFinal[rec.Value] = true
			}
			if rec.Offset < 0 { // offset unknown: read, nothing more
				readSomewhere[rec.Value] = true
				continue
			}
			p := pos{e.Partition, rec.Offset}
			if sessions[e.Session].Final {
				finalAt[p] = true
			}
			exists[p] = true
			if at[rec.Value] == nil {
				at[rec.Value] = map[pos]bool{}
			}
			at[rec.Value][p] = true
			if rec.ID != "" {
				if ids[rec.Value] == nil {
					ids[rec.Value] = map[string]bool{}
				}
				ids[rec.Value][rec.ID] = true
			}
			if holds[p] == nil {
				holds[p] = map[string][]string{}
			}
			if s := holds[p][rec.Value]; !slices.Contains(s, e.Session) {
				holds[p][rec.Value] = append(s, e.Session)
			}
			if m, ok := maxRead[e.Partition]; !ok || rec.Offset > m {
				maxRead[e.Partition] = rec.Offset
			}
		}
	}
	r.ValuesRead = len(at)
	for v := range readSomewhere {
		if at[v] == nil {
			r.ValuesRead++
		}
	}
	for _, w := range h.Writes {
		if w.Outcome == Acked && w.Offset >= 0 {
			exists[pos{w.Partition, w.Offset}] = true
		}
	}

	// Duplicates and inconsistent offsets, in a stable order.
	values := make([]string, 0, len(at))
	for v, ps := range at {
		if len(ps) > 1 {
			values = append(values, v)
		}
	}
	sort.Strings(values)
	for _, v := range values {
		c.add(Duplicate, "%s at %s", v, joinPos(at[v]))
	}
	var multi []pos
	for p, vs := range holds {
		if len(vs) > 1 {
			multi = append(multi, p)
		}
	}
	sortPos(multi)
	for _, p := range multi {
		var parts []string
		for _, v := range sortedKeys(holds[p]) {
			parts = append(parts, fmt.Sprintf("%s (read by %s)", v, strings.Join(holds[p][v], ",")))
		}
		c.add(Inconsistent, "%s holds %s", p, strings.Join(parts, " and "))
	}

	// Pass 2: each session's order per partition.
	type cursor struct {
		last   int64 // -1: unknown
		lastID string
		known  bool
		seen   map[int64]bool // redelivering sessions only
	}
	cursors := map[string]map[int32]*cursor{}
	// A jump over offsets [from, to) of a partition.
	type jump struct {
		cur       *cursor
		partition int32
		from, to  int64
		session   string
		example   string // with a %d for the offsets never received
	}
	var jumps []jump
	var ends []Event
	// unseen counts the offsets in [from, to) that exist and that the
	// session has not received (so far).
	unseen := func(cur *cursor, partition int32, from, to int64) int {
		n := 0
		for o := from; o < to; o++ {
			p := pos{partition, o}
			if !cur.seen[o] && !(opt.Sparse && !exists[p]) && !(opt.Compacted && !finalAt[p]) {
				n++
			}
		}
		return n
	}
	for _, e := range h.Events {
		if e.Kind == End {
			ends = append(ends, e)
			continue
		}
		if cursors[e.Session] == nil {
			cursors[e.Session] = map[int32]*cursor{}
		}
		cur := cursors[e.Session][e.Partition]
		if cur == nil {
			cur = &cursor{}
			cursors[e.Session][e.Partition] = cur
		}
		info := sessions[e.Session]
		if info.Redelivers && cur.seen == nil {
			cur.seen = map[int64]bool{}
		}
		if e.Kind == Seek {
			cur.known, cur.last, cur.lastID = e.Offset >= 0, e.Offset-1, ""
			continue
		}
		for _, rec := range e.Records {
			if rec.Offset < 0 {
				continue
			}
			if cur.known {
				switch {
				case rec.Offset <= cur.last && info.Redelivers:
					r.Redeliveries++
				case rec.Offset <= cur.last:
					c.add(NonMonotonic, "session %s partition %d: offset %d (%s) after %d", e.Session, e.Partition, rec.Offset, rec.Value, cur.last)
				case rec.Offset > cur.last+1:
					if unseen(cur, e.Partition, cur.last+1, rec.Offset) > 0 {
						// Judged at the end: a redelivering session may
						// still receive the offsets jumped over.
						jumps = append(jumps, jump{cur: cur, partition: e.Partition, from: cur.last + 1, to: rec.Offset, session: e.Session,
							example: fmt.Sprintf("session %s partition %d: offset %d after %d (%%d offsets skipped)%s", e.Session, e.Partition, rec.Offset, cur.last, idsOf(cur.lastID, rec.ID))})
					}
				}
			}
			cur.known, cur.last, cur.lastID = true, rec.Offset, rec.ID
			if cur.seen != nil {
				cur.seen[rec.Offset] = true
			}
		}
	}

	for _, j := range jumps {
		n := unseen(j.cur, j.partition, j.from, j.to)
		if n == 0 {
			r.LateRedelivered++
			continue
		}
		r.SkippedOffsets += n
		if r.SkipsBySession == nil {
			r.SkipsBySession = map[string]int{}
		}
		r.SkipsBySession[j.session]++
		c.add(Skipped, j.example, n)
	}

	// Pass 3: every acknowledged write.
	writesByValue := make(map[string]*Write, len(h.Writes))
	if opt.Compacted {
		for i := range h.Writes {
			writesByValue[h.Writes[i].Value] = &h.Writes[i]
		}
	}
	for _, w := range h.Writes {
		switch w.Outcome {
		case Acked:
			r.Acked++
		case Failed:
			r.Failed++
			continue
		default:
			r.Unknown++
			continue
		}
		ps := at[w.Value]
		if len(ps) == 0 && readSomewhere[w.Value] {
			r.AckedRead++ // by a reader that does not know offsets
			if byFinal[w.Value] {
				r.FinalRead++
			}
			continue
		}
		if len(ps) == 0 && opt.Compacted && superseded(w, byKey[keyed{w.Partition, w.Key}], writesByValue) {
			r.Superseded++
			continue
		}
		if len(ps) > 0 {
			r.AckedRead++
			if byFinal[w.Value] {
				r.FinalRead++
			}
			if w.Offset >= 0 && !ps[pos{w.Partition, w.Offset}] {
				c.add(AckMismatch, "%s acked at %d/%d, read at %s", w.Value, w.Partition, w.Offset, joinPos(ps))
			} else if w.Offset < 0 && !onPartition(ps, w.Partition) {
				c.add(AckMismatch, "%s acked on partition %d, read at %s", w.Value, w.Partition, joinPos(ps))
			} else if w.ID != "" && len(ids[w.Value]) > 0 && !ids[w.Value][w.ID] {
				c.add(AckMismatch, "%s acked as message id %s, read as %s", w.Value, w.ID, strings.Join(sortedKeys(ids[w.Value]), ","))
			}
			continue
		}
		reached := ""
		if m, ok := maxRead[w.Partition]; ok && w.Offset >= 0 && m > w.Offset {
			reached = fmt.Sprintf("offset %d was read", m)
		}
		for _, e := range ends {
			if reached == "" && e.Partition == w.Partition && e.Seq > w.Seq {
				reached = fmt.Sprintf("%s read the partition to its end %d", e.Session, e.Offset)
			}
		}
		at := fmt.Sprintf("partition %d", w.Partition)
		if w.Offset >= 0 {
			at = fmt.Sprintf("%d/%d", w.Partition, w.Offset)
		}
		if reached != "" {
			c.add(Lost, "%s (%s) acked at %s, never read; %s", w.Value, w.Producer, at, reached)
		} else {
			c.add(Unseen, "%s (%s) acked at %s, no consumer got there", w.Value, w.Producer, at)
		}
	}

	if opt.Compacted {
		c.latestValues(h, at, byFinal, sessions)
	}

	r.Valid = true
	for _, cl := range Classes {
		a := c.classes[cl]
		r.Anomalies = append(r.Anomalies, *a)
		if a.Count > 0 {
			r.Valid = false
		}
	}
	return r
}

func onPartition(ps map[pos]bool, p int32) bool {
	for q := range ps {
		if q.p == p {
			return true
		}
	}
	return false
}

func joinPos(ps map[pos]bool) string {
	list := make([]pos, 0, len(ps))
	for p := range ps {
		list = append(list, p)
	}
	sortPos(list)
	s := make([]string, len(list))
	for i, p := range list {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func sortPos(ps []pos) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].p != ps[j].p {
			return ps[i].p < ps[j].p
		}
		return ps[i].o < ps[j].o
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// idsOf names the Pulsar message ids of a skip's two records, when known.
func idsOf(before, after string) string {
	if before == "" && after == "" {
		return ""
	}
	return fmt.Sprintf(", message id %s after %s", after, before)
}

// superseded reports whether an unread write w may have been replaced by a
// record of its key that was read: one not provably earlier than w (an
// earlier offset, both known, or an earlier write of w's producer).
func superseded(w Write, read []Record, writes map[string]*Write) bool {
	for _, rec := range read {
		if rec.Value == w.Value {
			continue
		}
		o := rec.Offset
		if o < 0 {
			if rw := writes[rec.Value]; rw != nil {
				o = rw.Offset
			}
		}
		if o >= 0 && w.Offset >= 0 {
			if o > w.Offset {
				return true
			}
			continue
		}
		if rw := writes[rec.Value]; rw != nil && rw.Producer == w.Producer {
			if rw.Seq > w.Seq {
				return true
			}
			continue
		}
		return true // order unknown: maybe later
	}
	return false
}

// latestValues is the compacted rule for what the final readers must have:
// for every key of every partition, the acknowledged write at the highest
// offset known for the key (acknowledged, or read by anyone) must be read
// by a final session, since compaction keeps each key's latest record.
// Offsets of Pulsar writes are taken from where they were read.
func (c *checker) latestValues(h *History, at map[string]map[pos]bool, byFinal map[string]bool, sessions map[string]SessionInfo) {
	type keyed struct {
		p   int32
		key string
	}
	latest := map[keyed]int64{}
	note := func(k keyed, o int64) {
		if m, ok := latest[k]; !ok || o > m {
			latest[k] = o
		}
	}
	offsetOf := func(w *Write) int64 {
		if w.Offset >= 0 {
			return w.Offset
		}
		for p := range at[w.Value] {
			if p.p == w.Partition {
				return p.o
			}
		}
		return -1
	}
	for _, e := range h.Events {
		for _, rec := range e.Records {
			if rec.Offset >= 0 {
				note(keyed{e.Partition, rec.Key}, rec.Offset)
			}
		}
	}
	for i := range h.Writes {
		w := &h.Writes[i]
		if w.Outcome == Acked {
			if o := offsetOf(w); o >= 0 {
				note(keyed{w.Partition, w.Key}, o)
			}
		}
	}
	finals := false
	for _, s := range sessions {
		finals = finals || s.Final
	}
	if !finals {
		return
	}
	for i := range h.Writes {
		w := &h.Writes[i]
		if w.Outcome != Acked {
			continue
		}
		o := offsetOf(w)
		if o < 0 || o != latest[keyed{w.Partition, w.Key}] || byFinal[w.Value] || len(at[w.Value]) == 0 {
			continue // not the latest, read by a final reader, or unread (judged above)
		}
		c.add(Lost, "%s (%s), the latest value of key %q at %d/%d, not read by the final readers", w.Value, w.Producer, w.Key, w.Partition, o)
	}
}
