package managedledger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestCursorScript runs testdata/cursor: a script of ledger and cursor
// commands, each followed by the expected state (regenerate with -rewrite,
// then review the diff).
//
// Commands:
//
//	new max-bytes=N                   fresh file-backed ledger (4 entries per ledger at 400)
//	append n=N msgs=M                 N entries of M messages each
//	open c=NAME start=earliest|latest
//	mark-delete c=NAME pos=L:E
//	delete c=NAME pos=L:E[,L:E...]
//	ack-batch c=NAME pos=L:E unacked=i[,i...]
//	ack-between c=NAME after=L:E before=L:E
//	set-next c=NAME idx=N
//	reset c=NAME pos=L:E
//	redeliver c=NAME pos=L:E[,L:E...]  one more redelivery of each entry
//	read c=NAME n=N
//	rewind c=NAME
//	truncate idx=N
//	retention time=0|-1 bytes=N
//	restart
//	state c=NAME
//	ledgers
func TestCursorScript(t *testing.T) {
	datadriven.RunTest(t, "testdata/cursor", func(t *testing.T, d *datadriven.TestData) string {
		return cursorScript.run(t, d)
	})
}

type scriptState struct {
	e   *env
	ml  *ManagedLedger
	cfg Config
	seq int
}

var cursorScript = &scriptState{}

func parsePos(s string) Position {
	l, e, _ := strings.Cut(s, ":")
	li, _ := strconv.ParseInt(l, 10, 64)
	ei, _ := strconv.ParseInt(e, 10, 64)
	return Position{LedgerID: li, EntryID: ei}
}

func (s *scriptState) cursor(t *testing.T, d *datadriven.TestData) *Cursor {
	var name string
	d.ScanArgs(t, "c", &name)
	c, ok := s.ml.Cursor(name)
	if !ok {
		t.Fatalf("%s: no cursor %q", d.Pos, name)
	}
	return c
}

func cursorState(c *Cursor) string {
	c.mu.Lock()
	acked := slices.SortedFunc(maps.Keys(c.mu.acked), Position.Compare)
	batch := slices.SortedFunc(maps.Keys(c.mu.batchAcks), Position.Compare)
	var bs []string
	for _, p := range batch {
		var idx []string
		for k := 0; k < 64*len(c.mu.batchAcks[p]); k++ {
			if c.mu.batchAcks[p][k/64]&(1<<(k%64)) != 0 {
				idx = append(idx, strconv.Itoa(k))
			}
		}
		bs = append(bs, fmt.Sprintf("%v{%s}", p, strings.Join(idx, ",")))
	}
	var rs string
	if len(c.mu.redeliveries) > 0 {
		var r []string
		for _, p := range slices.SortedFunc(maps.Keys(c.mu.redeliveries), Position.Compare) {
			r = append(r, fmt.Sprintf("%v:%d", p, c.mu.redeliveries[p]))
		}
		rs = " redelivered=[" + strings.Join(r, " ") + "]"
	}
	md, read := c.mu.markDelete, c.mu.read
	c.mu.Unlock()
	return fmt.Sprintf("md=%v read=%v next=%d backlog=%d acked=%v batch=[%s]%s\n",
		md, read, c.NextIndex(), c.Backlog(), acked, strings.Join(bs, " "), rs)
}

func (s *scriptState) run(t *testing.T, d *datadriven.TestData) string {
	ctx := context.Background()
	switch d.Cmd {
	case "new":
		var maxBytes int64
		d.ScanArgs(t, "max-bytes", &maxBytes)
		s.e = newEnv(t, t.TempDir())
		s.cfg = Config{MaxLedgerBytes: maxBytes}
		s.ml = s.e.open("script", s.cfg)
		s.seq = 0
		return "ok\n"
	case "append":
		var n, msgs int
		d.ScanArgs(t, "n", &n)
		d.ScanArgs(t, "msgs", &msgs)
		var out []string
		for i := 0; i < n; i++ {
			en, err := s.ml.Append(ctx, Entry{MsgCount: int32(msgs), Producer: "p", Data: []byte(fmt.Sprintf("%036d", s.seq))})
			if err != nil {
				return err.Error() + "\n"
			}
			s.seq++
			out = append(out, fmt.Sprintf("%v@%d", en.Position, en.FirstIndex))
		}
		return strings.Join(out, " ") + "\n"
	case "open":
		var name, start string
		d.ScanArgs(t, "c", &name)
		d.ScanArgs(t, "start", &start)
		ip := InitialLatest
		if start == "earliest" {
			ip = InitialEarliest
		}
		c, err := s.ml.OpenCursor(ctx, name, ip)
		if err != nil {
			return err.Error() + "\n"
		}
		return cursorState(c)
	case "mark-delete", "delete", "ack-batch", "ack-between", "set-next", "reset", "rewind", "redeliver":
		c := s.cursor(t, d)
		var err error
		switch d.Cmd {
		case "mark-delete":
			var p string
			d.ScanArgs(t, "pos", &p)
			err = c.MarkDelete(ctx, parsePos(p))
		case "redeliver":
			var ps string
			d.ScanArgs(t, "pos", &ps)
			var pos []Position
			for _, p := range strings.Split(ps, ",") {
				pos = append(pos, parsePos(p))
			}
			c.Redelivered(pos...)
		case "delete":
			var ps string
			d.ScanArgs(t, "pos", &ps)
			var pos []Position
			for _, p := range strings.Split(ps, ",") {
				pos = append(pos, parsePos(p))
			}
			err = c.Delete(ctx, pos...)
		case "ack-batch":
			var p, un string
			d.ScanArgs(t, "pos", &p)
			d.ScanArgs(t, "unacked", &un)
			set := make([]uint64, 1)
			for _, k := range strings.Split(un, ",") {
				if k == "" {
					continue
				}
				i, _ := strconv.Atoi(k)
				set[0] |= 1 << i
			}
			err = c.AckBatch(ctx, parsePos(p), set)
		case "ack-between":
			var after, before string
			d.ScanArgs(t, "after", &after)
			d.ScanArgs(t, "before", &before)
			err = c.AckBetween(ctx, parsePos(after), parsePos(before))
		case "set-next":
			var idx int64
			d.ScanArgs(t, "idx", &idx)
			err = c.SetNextIndex(ctx, idx)
		case "reset":
			var p string
			d.ScanArgs(t, "pos", &p)
			err = c.ResetTo(ctx, parsePos(p))
		case "rewind":
			c.Rewind()
		}
		if err != nil {
			return err.Error() + "\n"
		}
		return cursorState(c)
	case "read":
		c := s.cursor(t, d)
		var n int
		d.ScanArgs(t, "n", &n)
		es, err := c.ReadEntries(ctx, n, 1<<20)
		if err != nil {
			return err.Error() + "\n"
		}
		var out []string
		for _, en := range es {
			out = append(out, fmt.Sprintf("%v@%d", en.Position, en.FirstIndex))
		}
		return "[" + strings.Join(out, " ") + "] " + cursorState(c)
	case "state":
		return cursorState(s.cursor(t, d))
	case "truncate":
		var idx int64
		d.ScanArgs(t, "idx", &idx)
		if err := s.ml.TruncateBefore(ctx, idx); err != nil {
			return err.Error() + "\n"
		}
		return s.ledgers()
	case "retention":
		var ms, bytes int64
		d.ScanArgs(t, "time", &ms)
		d.ScanArgs(t, "bytes", &bytes)
		cfg := s.cfg
		cfg.RetentionBytes = bytes
		if ms < 0 {
			cfg.RetentionTime = -1
		}
		s.ml.SetConfig(cfg)
		if err := s.ml.ApplyRetention(ctx); err != nil {
			return err.Error() + "\n"
		}
		return s.ledgers()
	case "restart":
		s.e.restart()
		s.ml = s.e.open("script", s.cfg)
		return s.ledgers()
	case "ledgers":
		return s.ledgers()
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}

func (s *scriptState) ledgers() string {
	st := s.ml.Stats()
	var ls []string
	for _, l := range st.Ledgers {
		ls = append(ls, fmt.Sprintf("%d:%d@%d", l.LedgerID, l.Entries, l.FirstIndex))
	}
	return fmt.Sprintf("first=%d next=%d ledgers=[%s] lac=%v\n", st.FirstIndex, st.NextIndex, strings.Join(ls, " "), s.ml.LastConfirmed())
}
