package kafka

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// librdkafkaPython is Debian's python3 when it can import confluent_kafka
// (apt-get install python3-confluent-kafka: librdkafka 2.0); "" otherwise.
// The Debian interpreter is tried first because a python3 earlier on PATH
// (pyenv, a venv) does not see Debian's dist-packages.
func librdkafkaPython() string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import confluent_kafka").Run() == nil {
			return path
		}
	}
	return ""
}

// txnRecords reads topic partition 0 from the start with the given
// isolation until nothing new comes for quiet, keeping values and offsets.
func txnRecords(t *testing.T, addr, topic string, iso kgo.IsolationLevel) (values []string, offsets []int64) {
	t.Helper()
	c := newKgo(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
	defer c.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := c.PollFetches(ctx)
		cancel()
		if errors.Is(fs.Err0(), context.DeadlineExceeded) {
			return values, offsets
		}
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			values = append(values, string(r.Value))
			offsets = append(offsets, r.Offset)
		})
	}
}

// TestTxnLibrdkafka: librdkafka (python3-confluent-kafka, testdata/librdkafka/txn.py)
// as transactional producer and read_committed consumer. The script commits
// and aborts producer-only transactions, then runs a consume-transform-produce
// loop over inputs that were themselves written in transactions (with an
// aborted one between), committing its input offsets with
// send_offsets_to_transaction and aborting every third batch once; last, a
// librdkafka read_committed consumer reads both outputs. The judge here: no
// aborted record is read (by librdkafka or franz-go read_committed), the
// committed ones are all there in order, every input is transformed exactly
// once, the group's offset is past the last input, and the aborted records
// really are in the log (read_uncommitted sees them), so ignoring an abort
// would be caught.
func TestTxnLibrdkafka(t *testing.T) {
	py := librdkafkaPython()
	if py == "" {
		t.Skip("python3-confluent-kafka not installed (apt-get install python3-confluent-kafka)")
	}
	s := startServer(t)
	ctx := testCtx(t)
	const in, plain, ctp, group = "rdk-in", "rdk-plain", "rdk-ctp", "rdk-group"
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, in, plain, ctp); err != nil {
		t.Fatal(err)
	}
	// Inputs: in-0..9 committed, junk aborted, in-10..19 committed.
	fp := newKgo(t, s.addr, kgo.TransactionalID("rdk-inputs"))
	produceTxn(t, ctx, fp, in, "in", 10, true)
	produceTxn(t, ctx, fp, in, "junk", 5, false)
	if err := fp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	inputs := seq("in", 20)
	for _, v := range inputs[10:] {
		if err := fp.ProduceSync(ctx, &kgo.Record{Topic: in, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fp.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	pctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(pctx, py, "testdata/librdkafka/txn.py", s.addr, in, "20", plain, ctp, group, "rdk-txn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("txn.py: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	type event struct {
		Event  string   `json:"event"`
		Topic  string   `json:"topic"`
		Values []string `json:"values"`
	}
	committed := map[string][]string{}
	aborted := map[string][]string{}
	read := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("txn.py printed %q: %v", sc.Text(), err)
		}
		switch e.Event {
		case "committed":
			committed[e.Topic] = append(committed[e.Topic], e.Values...)
		case "aborted":
			aborted[e.Topic] = append(aborted[e.Topic], e.Values...)
		case "read":
			read[e.Topic] = e.Values
		}
	}
	if len(aborted[plain]) == 0 || len(aborted[ctp]) == 0 {
		t.Fatalf("the script aborted nothing: %v", aborted)
	}
	var transformed []string
	for _, v := range inputs {
		transformed = append(transformed, "t-"+v)
	}
	if want := append(seq("c1", 5), seq("c2", 5)...); !slices.Equal(committed[plain], want) {
		t.Fatalf("%s: the script committed %v, want %v", plain, committed[plain], want)
	}
	// Each input once, in order: junk was never read, an aborted batch was redone.
	if !slices.Equal(committed[ctp], transformed) {
		t.Errorf("%s: committed outputs %v\nwant %v", ctp, committed[ctp], transformed)
	}
	for _, topic := range []string{plain, ctp} {
		if !slices.Equal(read[topic], committed[topic]) {
			t.Errorf("%s: librdkafka read_committed read %v\nwant %v", topic, read[topic], committed[topic])
		}
		got, _ := txnRecords(t, s.addr, topic, kgo.ReadCommitted())
		if !slices.Equal(got, committed[topic]) {
			t.Errorf("%s: franz-go read_committed read %v\nwant %v", topic, got, committed[topic])
		}
		all, _ := txnRecords(t, s.addr, topic, kgo.ReadUncommitted())
		for _, v := range aborted[topic] {
			if !slices.Contains(all, v) {
				t.Errorf("%s: aborted %s is not in the log (read_uncommitted: %v)", topic, v, all)
			}
		}
	}
	// The group's committed offset is past the last input record.
	vals, offs := txnRecords(t, s.addr, in, kgo.ReadCommitted())
	if !slices.Equal(vals, inputs) {
		t.Fatalf("inputs read back %v", vals)
	}
	fo, err := adm.FetchOffsets(testCtx(t), group) // ctx may have run out while the script ran
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := fo.Lookup(in, 0); !ok || got.At <= offs[len(offs)-1] {
		t.Errorf("group %s at %v, last input at offset %d", group, got.At, offs[len(offs)-1])
	}
	if t.Failed() {
		t.Logf("txn.py stderr:\n%s", strings.TrimSpace(stderr.String()))
	}
}
