package cli

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// groups: Kafka consumer groups over the Kafka admin APIs (kadm), as
// kafka-consumer-groups.sh does. A group's commits are the cursor of the
// subscription of the same name (docs/consumer-groups.md), so a reset here
// moves that subscription too.

func groupsCommand() *command {
	var (
		topic     string
		partition int
		earliest  bool
		latest    bool
		toOffset  int64
		toTime    string
		shiftBy   int64
		dryRun    bool
	)
	return &command{name: "groups", summary: "list, describe (lag per partition), reset and delete Kafka consumer groups", subs: []*command{
		{
			name: "list", summary: "list consumer groups with their state",
			run: func(e *env, args []string) error {
				return groupsList(e)
			},
		},
		{
			name: "describe", summary: "show a group's members and per-partition committed offset, end offset and lag", args: "GROUP",
			run: func(e *env, args []string) error {
				return groupsDescribe(e, args[0])
			},
		},
		{
			name: "reset-offsets", summary: "move an inactive group's committed offsets on a topic", args: "GROUP",
			long: `Give --topic and exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by.
The group must have no active members (state Empty), as kafka-consumer-groups.sh requires.

Example:
  kopernik groups reset-offsets billing --topic orders --to-datetime 2026-12-01T00:00:00Z`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&topic, "topic", "", "`TOPIC` whose offsets move (required)")
				fs.IntVar(&partition, "partition", -1, "only this partition (-1: every partition)")
				fs.BoolVar(&earliest, "to-earliest", false, "to each partition's log start")
				fs.BoolVar(&latest, "to-latest", false, "to each partition's end (skip everything)")
				fs.Int64Var(&toOffset, "to-offset", -1, "to this `OFFSET` (clamped to the log)")
				fs.StringVar(&toTime, "to-datetime", "", "to the first record at or after `TIME` (RFC 3339, or unix milliseconds)")
				fs.Int64Var(&shiftBy, "shift-by", 0, "move the committed offsets by `N` (negative: back)")
				fs.BoolVar(&dryRun, "dry-run", false, "show the new offsets without committing them")
			},
			run: func(e *env, args []string) error {
				modes := 0
				for _, on := range []bool{earliest, latest, toOffset >= 0, toTime != "", shiftBy != 0} {
					if on {
						modes++
					}
				}
				if topic == "" || modes != 1 {
					return usagef("give --topic and exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
				}
				r := resetSpec{topic: topic, partition: int32(partition), earliest: earliest, latest: latest, offset: toOffset, shift: shiftBy, dryRun: dryRun}
				if toTime != "" {
					ms, err := parseTime(toTime)
					if err != nil {
						return usagef("--to-datetime %q: want RFC 3339 (2026-12-01T00:00:00Z) or unix milliseconds", toTime)
					}
					r.timeMs = &ms
				}
				return groupsReset(e, args[0], r)
			},
		},
		{
			name: "delete", summary: "delete an inactive group and its committed offsets", args: "GROUP",
			run: func(e *env, args []string) error {
				return groupsDelete(e, args[0])
			},
		},
	}}
}

func parseTime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

type groupListEntry struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocolType"`
}

func groupsList(e *env) error {
	adm, err := e.kadm()
	if err != nil {
		return err
	}
	groups, err := adm.ListGroups(e.ctx)
	if err != nil {
		return fmt.Errorf("listing groups: %w", err)
	}
	list := []groupListEntry{}
	rows := [][]string{}
	for _, g := range groups.Sorted() {
		list = append(list, groupListEntry{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType})
		rows = append(rows, []string{g.Group, g.State, g.ProtocolType})
	}
	return e.emit(list, []string{"GROUP", "STATE", "PROTOCOL-TYPE"}, rows)
}

type groupMember struct {
	MemberID   string `json:"memberId"`
	InstanceID string `json:"instanceId,omitempty"`
	ClientID   string `json:"clientId"`
	Host       string `json:"host"`
}

type groupPartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committedOffset"`
	End       int64  `json:"endOffset"`
	Lag       int64  `json:"lag"`
	MemberID  string `json:"memberId,omitempty"`
	ClientID  string `json:"clientId,omitempty"`
	Error     string `json:"error,omitempty"`
}

type groupDescription struct {
	Group      string              `json:"group"`
	State      string              `json:"state"`
	Protocol   string              `json:"protocol"`
	Members    []groupMember       `json:"members"`
	Partitions []groupPartitionLag `json:"partitions"`
	TotalLag   int64               `json:"totalLag"`
}

func groupsDescribe(e *env, group string) error {
	adm, err := e.kadm()
	if err != nil {
		return err
	}
	lags, err := adm.Lag(e.ctx, group)
	if err != nil {
		return fmt.Errorf("describing group %s: %w", group, err)
	}
	l, ok := lags[group]
	if !ok {
		return fmt.Errorf("group %s: no answer", group)
	}
	if err := errors.Join(l.DescribeErr, l.FetchErr); err != nil {
		return fmt.Errorf("group %s: %w", group, err)
	}
	if (l.State == "Dead" || l.State == "") && len(l.Members) == 0 && len(l.Lag.Sorted()) == 0 {
		return fmt.Errorf("group %s not found", group)
	}
	d := groupDescription{Group: group, State: l.State, Protocol: l.Protocol, Members: []groupMember{}, Partitions: []groupPartitionLag{}}
	for _, m := range l.Members {
		gm := groupMember{MemberID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
		if m.InstanceID != nil {
			gm.InstanceID = *m.InstanceID
		}
		d.Members = append(d.Members, gm)
	}
	for _, pl := range l.Lag.Sorted() {
		p := groupPartitionLag{Topic: pl.Topic, Partition: pl.Partition, Committed: pl.Commit.At, End: pl.End.Offset, Lag: pl.Lag}
		if pl.Member != nil {
			p.MemberID, p.ClientID = pl.Member.MemberID, pl.Member.ClientID
		}
		if pl.Err != nil {
			p.Error = pl.Err.Error()
		}
		if pl.Lag > 0 {
			d.TotalLag += pl.Lag
		}
		d.Partitions = append(d.Partitions, p)
	}
	if e.json() {
		return writeJSON(e.stdout, d)
	}
	fmt.Fprintf(e.stdout, "GROUP %s  STATE %s  PROTOCOL %s  MEMBERS %d  TOTAL-LAG %d\n\n", d.Group, d.State, orDash(d.Protocol), len(d.Members), d.TotalLag)
	rows := [][]string{}
	for _, p := range d.Partitions {
		rows = append(rows, []string{p.Topic, strconv.Itoa(int(p.Partition)), offsetText(p.Committed), strconv.FormatInt(p.End, 10),
			strconv.FormatInt(p.Lag, 10), orDash(p.MemberID), orDash(p.ClientID)})
	}
	return writeTable(e.stdout, []string{"TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER", "CLIENT-ID"}, rows)
}

// offsetText shows a committed offset; -1 (none committed) as "-".
func offsetText(o int64) string {
	if o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type resetSpec struct {
	topic            string
	partition        int32
	earliest, latest bool
	offset           int64
	timeMs           *int64
	shift            int64
	dryRun           bool
}

type offsetChange struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Old       int64  `json:"oldOffset"`
	New       int64  `json:"newOffset"`
}

func groupsReset(e *env, group string, r resetSpec) error {
	adm, err := e.kadm()
	if err != nil {
		return err
	}
	n, err := topicName(r.topic)
	if err != nil {
		return err
	}
	topic := kafkaName(n)
	groups, err := adm.DescribeGroups(e.ctx, group)
	if err != nil {
		return fmt.Errorf("describing group %s: %w", group, err)
	}
	if g, ok := groups[group]; ok && len(g.Members) > 0 {
		return fmt.Errorf("group %s has %d active members (state %s): stop them first", group, len(g.Members), g.State)
	}
	starts, ends, err := e.offsets(e.ctx, topic)
	if err != nil {
		return err
	}
	var byTime kadm.ListedOffsets
	if r.timeMs != nil {
		if byTime, err = adm.ListOffsetsAfterMilli(e.ctx, *r.timeMs, topic); err == nil {
			err = byTime.Error()
		}
		if err != nil {
			return fmt.Errorf("offsets of %s at %d: %w", topic, *r.timeMs, err)
		}
	}
	committed, err := adm.FetchOffsetsForTopics(e.ctx, group, topic)
	if err != nil {
		return fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	if _, ok := starts[topic]; !ok {
		return fmt.Errorf("topic %s not found", topic)
	}
	var changes []offsetChange
	commit := kadm.Offsets{}
	starts.Each(func(so kadm.ListedOffset) {
		if r.partition >= 0 && so.Partition != r.partition {
			return
		}
		eo, _ := ends.Lookup(topic, so.Partition)
		old := int64(-1)
		if c, ok := committed.Lookup(topic, so.Partition); ok && c.Err == nil {
			old = c.At
		}
		var to int64
		switch {
		case r.earliest:
			to = so.Offset
		case r.latest:
			to = eo.Offset
		case r.timeMs != nil:
			to = eo.Offset
			if t, ok := byTime.Lookup(topic, so.Partition); ok && t.Offset >= 0 {
				to = t.Offset
			}
		case r.shift != 0:
			base := old
			if base < 0 {
				base = so.Offset
			}
			to = base + r.shift
		default:
			to = r.offset
		}
		to = min(max(to, so.Offset), eo.Offset)
		changes = append(changes, offsetChange{Topic: topic, Partition: so.Partition, Old: old, New: to})
		commit.Add(kadm.Offset{Topic: topic, Partition: so.Partition, At: to, LeaderEpoch: -1})
	})
	if len(changes) == 0 {
		return fmt.Errorf("topic %s has no partition %d", topic, r.partition)
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Partition < changes[j].Partition })
	if !r.dryRun {
		resps, err := adm.CommitOffsets(e.ctx, group, commit)
		if err == nil {
			err = resps.Error()
		}
		if err != nil {
			return fmt.Errorf("committing offsets of %s: %w", group, err)
		}
	}
	rows := [][]string{}
	for _, c := range changes {
		rows = append(rows, []string{c.Topic, strconv.Itoa(int(c.Partition)), offsetText(c.Old), strconv.FormatInt(c.New, 10)})
	}
	return e.emit(struct {
		Group   string         `json:"group"`
		DryRun  bool           `json:"dryRun"`
		Changes []offsetChange `json:"changes"`
	}{group, r.dryRun, changes}, []string{"TOPIC", "PARTITION", "OLD-OFFSET", "NEW-OFFSET"}, rows)
}

func groupsDelete(e *env, group string) error {
	adm, err := e.kadm()
	if err != nil {
		return err
	}
	resps, err := adm.DeleteGroups(e.ctx, group)
	if err != nil {
		return fmt.Errorf("deleting group %s: %w", group, err)
	}
	if r, ok := resps[group]; ok && r.Err != nil {
		if errors.Is(r.Err, kerr.GroupIDNotFound) {
			return fmt.Errorf("group %s not found", group)
		}
		return fmt.Errorf("deleting group %s: %w", group, r.Err)
	}
	return e.done("deleted group "+group, map[string]any{"group": group})
}
