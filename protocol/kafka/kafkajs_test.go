package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// kafkajsDir holds judge.js and the locked kafkajs (.ci/run installs it
// there with npm ci; node_modules is not committed).
const kafkajsDir = "testdata/kafkajs"

// needKafkajs skips without node, and without the installed kafkajs
// (failing instead under CI=true, where .ci/run installs it).
func needKafkajs(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed: kafkajs judges skipped")
	}
	if _, err := os.Stat(filepath.Join(kafkajsDir, "node_modules", "kafkajs", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kafkajs not installed in %s (npm ci there); required under CI=true", kafkajsDir)
		}
		t.Skipf("kafkajs not installed: run npm ci in protocol/kafka/%s", kafkajsDir)
	}
}

// kafkajs runs judge.js in mode against the broker at addr with req as
// its JSON request, and decodes its answer into answer.
func kafkajs(t *testing.T, addr, mode string, req, answer any) {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "judge.js", mode)
	cmd.Dir = kafkajsDir
	cmd.Env = append(os.Environ(), "BROKER="+addr, "KAFKAJS_NO_PARTITIONER_WARNING=1")
	cmd.Stdin = bytes.NewReader(in)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kafkajs %s: %v\n%s", mode, err, errOut.String())
	}
	if errOut.Len() > 0 {
		t.Logf("kafkajs %s stderr:\n%s", mode, errOut.String())
	}
	if err := json.Unmarshal(out.Bytes(), answer); err != nil {
		t.Fatalf("kafkajs %s answered %q: %v", mode, out.String(), err)
	}
}

// jsRecord is a record as judge.js reports it (offsets are strings, as
// kafkajs gives them).
type jsRecord struct {
	Partition int     `json:"partition"`
	Offset    string  `json:"offset"`
	Key       *string `json:"key"`
	Value     *string `json:"value"`
}

func (r jsRecord) offset(t *testing.T) int64 {
	t.Helper()
	o, err := strconv.ParseInt(r.Offset, 10, 64)
	if err != nil {
		t.Fatalf("offset %q: %v", r.Offset, err)
	}
	return o
}

type jsMessage struct {
	Partition int     `json:"partition"`
	Key       string  `json:"key"`
	Value     *string `json:"value"`
}

type jsSend struct {
	Compression string      `json:"compression"`
	Messages    []jsMessage `json:"messages"`
}

// TestKafkajsCompaction is the kafkajs judge of compacted topics: kafkajs
// creates a cleanup.policy=compact topic, produces keys many times with
// tombstones (plain and gzip batches), and after a compaction a kafkajs
// group consumer reading from the beginning gets exactly each key's latest
// record (tombstones included), at the offset it was produced at. After
// delete.retention.ms (set by kafkajs's AlterConfigs) and another
// compaction, the tombstoned keys are gone. kafkajs's "seek > recovers from
// offset out of range" then holds on the compacted topic: a seek past the
// end resets to the first kept record, and a seek into a gap compaction
// left gives the next kept record.
func TestKafkajsCompaction(t *testing.T) {
	needKafkajs(t)
	s := startServer(t)
	const topic, partitions = "js-table", 2
	configs := map[string]string{
		"cleanup.policy":            "compact",
		"segment.bytes":             "4096",
		"min.cleanable.dirty.ratio": "0.1",
		"delete.retention.ms":       "86400000",
	}
	var none struct{}
	kafkajs(t, s.addr, "create", map[string]any{"topic": topic, "partitions": partitions, "configs": configs}, &none)

	// The plan: 30 sends of 20 messages over 25 keys a partition, one in
	// eight a tombstone, every third send gzip; each partition ends with a
	// key of its own, so that its last record stays.
	rng := rand.New(rand.NewPCG(7, 19))
	var sends []jsSend
	for i := range 30 {
		send := jsSend{Compression: map[bool]string{true: "gzip", false: "none"}[i%3 == 2]}
		for range 20 {
			p := rng.IntN(partitions)
			m := jsMessage{Partition: p, Key: fmt.Sprintf("p%d-key-%02d", p, rng.IntN(25))}
			if rng.IntN(8) != 0 {
				v := fmt.Sprintf("%s=v%d-%d", m.Key, i, rng.Uint32())
				m.Value = &v
			}
			send.Messages = append(send.Messages, m)
		}
		sends = append(sends, send)
	}
	var end jsSend
	for p := range partitions {
		v := "end"
		end.Messages = append(end.Messages, jsMessage{Partition: p, Key: fmt.Sprintf("p%d-end", p), Value: &v})
	}
	sends = append(sends, end)
	var produced struct {
		Sends [][]struct {
			Partition  int    `json:"partition"`
			BaseOffset string `json:"baseOffset"`
		} `json:"sends"`
	}
	kafkajs(t, s.addr, "produce", map[string]any{"topic": topic, "sends": sends}, &produced)
	if len(produced.Sends) != len(sends) {
		t.Fatalf("%d sends answered, %d made", len(produced.Sends), len(sends))
	}

	// Each key's latest record, at its offset: a partition's messages of
	// one send are one batch from its base offset on.
	type kept struct {
		offset int64
		value  *string
	}
	latest := map[string]kept{}
	total := 0
	for i, send := range sends {
		base := map[int]int64{}
		for _, m := range produced.Sends[i] {
			o, err := strconv.ParseInt(m.BaseOffset, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			base[m.Partition] = o
		}
		next := map[int]int64{}
		for _, m := range send.Messages {
			b, ok := base[m.Partition]
			if !ok {
				t.Fatalf("send %d: no base offset for partition %d: %+v", i, m.Partition, produced.Sends[i])
			}
			latest[m.Key] = kept{offset: b + next[m.Partition], value: m.Value}
			next[m.Partition]++
			total++
		}
	}
	// want lists, in partition and offset order, what a consumer from the
	// beginning must get: the latest records, with or without tombstones.
	want := func(tombstones bool) []string {
		var out []string
		for k, r := range latest {
			if r.value == nil && !tombstones {
				continue
			}
			v := "<null>"
			if r.value != nil {
				v = *r.value
			}
			out = append(out, fmt.Sprintf("%s/%020d %s=%s", k[:2], r.offset, k, v))
		}
		slices.Sort(out)
		return out
	}
	consume := func(group string) []string {
		t.Helper()
		var got struct {
			Records []jsRecord `json:"records"`
		}
		kafkajs(t, s.addr, "consume", map[string]any{"topic": topic, "group": group}, &got)
		var out []string
		for _, r := range got.Records {
			if r.Key == nil {
				t.Fatalf("keyless record %+v", r)
			}
			v := "<null>"
			if r.Value != nil {
				v = *r.Value
			}
			out = append(out, fmt.Sprintf("p%d/%020d %s=%s", r.Partition, r.offset(t), *r.Key, v))
		}
		slices.Sort(out) // partitions interleave; within one, kafkajs delivers in offset order
		return out
	}
	check := func(stage string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			for i := range max(len(got), len(want)) {
				g, w := "", ""
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Fatalf("%s: record %d: got %q, want %q (%d records, want %d)", stage, i, g, w, len(got), len(want))
				}
			}
		}
	}

	compactPartitions(t, s, topic, partitions, true)
	first := consume("js-restore-1")
	check("after compaction", first, want(true))

	// delete.retention.ms short, as kafkajs's AlterConfigs sets it (the
	// whole set: AlterConfigs replaces it), then wait it out and compact.
	configs["delete.retention.ms"] = "500"
	kafkajs(t, s.addr, "alter", map[string]any{"topic": topic, "configs": configs}, &none)
	time.Sleep(600 * time.Millisecond)
	compactPartitions(t, s, topic, partitions, true)
	second := consume("js-restore-2")
	check("after delete.retention.ms", second, want(false))
	if len(second) >= len(first) {
		t.Fatalf("tombstones not removed: %d records before, %d after", len(first), len(second))
	}

	// Seeks on partition 0: past the end (OFFSET_OUT_OF_RANGE, kafkajs
	// resets to the earliest: the first kept record) and into a gap.
	var keptOffsets []int64
	for k, r := range latest {
		if k[:2] == "p0" && r.value != nil {
			keptOffsets = append(keptOffsets, r.offset)
		}
	}
	slices.Sort(keptOffsets)
	type seekAnswer struct {
		First jsRecord `json:"first"`
	}
	var sa seekAnswer
	kafkajs(t, s.addr, "seek", map[string]any{"topic": topic, "group": "js-seek-1", "partition": 0, "offset": 100000}, &sa)
	if o := sa.First.offset(t); o != keptOffsets[0] {
		t.Fatalf("seek past the end: first record at %d, want the first kept offset %d", o, keptOffsets[0])
	}
	gap := int64(-1)
	for i := 1; i < len(keptOffsets); i++ {
		if keptOffsets[i] > keptOffsets[i-1]+1 {
			gap = keptOffsets[i-1] + 1
			var sa seekAnswer
			kafkajs(t, s.addr, "seek", map[string]any{"topic": topic, "group": "js-seek-2", "partition": 0, "offset": gap}, &sa)
			if o := sa.First.offset(t); o != keptOffsets[i] {
				t.Fatalf("seek to %d (removed by compaction): first record at %d, want %d", gap, o, keptOffsets[i])
			}
			break
		}
	}
	if gap < 0 {
		t.Fatal("no gap in partition 0: the plan compacts nothing")
	}
	t.Logf("kafkajs produced %d records over %d keys; read %d after compaction, %d after delete.retention.ms; partition 0 starts at %d, gap at %d",
		total, len(latest), len(first), len(second), keptOffsets[0], gap)
}
