package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
)

// tieredServer starts a broker with tiered storage on srv (deletion lag 0,
// small ledgers, a fast offload pass, manual offload only).
func tieredServer(t *testing.T, dataDir string, srv *s3test.Server) *Server {
	t.Helper()
	// Credentials come from the standard AWS chain, as for a user.
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	return startStorageServer(t, dataDir, nil,
		"offload-driver", "s3", "offload-s3-endpoint", srv.Endpoint, "offload-s3-bucket", srv.Bucket,
		"offload-s3-region", s3test.Region, "offload-deletion-lag", "0s", "offload-interval", "100ms",
		"segment-bytes", "16384",
		// The active ledger's file is created by the first checkpoint
		// after its first write (or at 64 KiB): soon, so that counting
		// local logs counts it.
		"journal-checkpoint-interval", "50ms")
}

// localLogs counts the ledger log files under the data dir.
func localLogs(t *testing.T, dataDir string) int {
	t.Helper()
	n := 0
	filepath.Walk(filepath.Join(dataDir, "ledgers"), func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".log") {
			n++
		}
		return nil
	})
	return n
}

func objectCount(t *testing.T, srv *s3test.Server) int {
	t.Helper()
	st, err := objectstore.NewS3(context.Background(), objectstore.S3Options{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// httpDo sends body as JSON (auth is off: adminREST's token is ignored).
func httpJSON(t *testing.T, s *Server, method, path string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return adminREST(t, s, "admin", method, path, string(b))
}

// offloadAll offloads a topic's sealed ledgers through the admin API (as
// pulsar-admin topics offload does: up to the last message id) and waits
// for SUCCESS and for the local copies to go (deletion lag 0).
func offloadAll(t *testing.T, s *Server, dataDir, topic string) {
	t.Helper()
	// Kafka auto-creates a partitioned topic of one partition: partition 0.
	base := "/admin/v2/persistent/public/default/" + topic + "-partition-0"
	code, body := httpGet(t, s, base+"/lastMessageId")
	if code != 200 {
		t.Fatalf("lastMessageId: %d %s", code, body)
	}
	var last map[string]any
	json.Unmarshal([]byte(body), &last)
	if code, body := httpJSON(t, s, "PUT", base+"/offload", last); code != http.StatusNoContent {
		t.Fatalf("PUT offload: %d %s", code, body)
	}
	waitUntil(t, 30*time.Second, "offload SUCCESS", func() bool {
		code, body := httpGet(t, s, base+"/offload")
		if code != 200 {
			t.Fatalf("GET offload: %d %s", code, body)
		}
		var st offloadStatusJSON
		json.Unmarshal([]byte(body), &st)
		if st.Status == "ERROR" {
			t.Fatalf("offload failed: %s", body)
		}
		return st.Status == "SUCCESS"
	})
	waitUntil(t, 30*time.Second, "local copies deleted", func() bool { return localLogs(t, dataDir) == 1 })
}

type offloadStatusJSON struct {
	Status    string `json:"status"`
	LastError string `json:"lastError"`
}

// TestTieredEndToEnd: Kafka and Pulsar producers write one topic, its
// sealed ledgers move to a real S3 server, the local copies are deleted,
// the broker restarts, and both protocols consume everything from the
// start, byte-exact.
func TestTieredEndToEnd(t *testing.T) {
	srv := s3test.Start(t)
	dataDir := t.TempDir()
	s := tieredServer(t, dataDir, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "tiered"
	var want [][]byte
	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		v := []byte(fmt.Sprintf("kafka-%04d-%s", i, strings.Repeat("k", i%97)))
		if err := kc.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	kc.Close()
	pc, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + s.Addr("pulsar").String(), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		v := []byte(fmt.Sprintf("pulsar-%04d-%s", i, strings.Repeat("p", i%89)))
		if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: v}); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	prod.Close()
	pc.Close()
	if n := localLogs(t, dataDir); n < 5 {
		t.Fatalf("only %d ledgers: the test needs several sealed ones", n)
	}

	offloadAll(t, s, dataDir, topic)
	if n := objectCount(t, srv); n < 8 {
		t.Fatalf("%d objects in the bucket", n)
	}
	s.Close(context.Background())
	s = tieredServer(t, dataDir, srv)
	if n := localLogs(t, dataDir); n != 1 {
		t.Fatalf("%d local ledgers after restart", n)
	}
	ts := consumeKafka(ctx, t, s, topic, want)
	consumePulsar(ctx, t, s, topic, want)

	// ListOffsets by time (Kafka) and get-message (Pulsar admin) on the
	// offloaded ledgers.
	kc, err = kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	for _, i := range []int{0, 150, 450} {
		wantOff := int64(i)
		for wantOff > 0 && ts[wantOff-1] >= ts[i] {
			wantOff--
		}
		lo, err := kadm.NewClient(kc).ListOffsetsAfterMilli(ctx, ts[i], topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := lo.Lookup(topic, 0); !ok || o.Err != nil || o.Offset != wantOff {
			t.Fatalf("ListOffsets after %d (record %d) = %+v, want offset %d", ts[i], i, o, wantOff)
		}
	}
	// The first Pulsar-format entry (get-message serves those), in an
	// offloaded ledger.
	r := earliestReader(t, s, topic)
	var id pulsar.MessageID
	for range 301 {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id = m.ID()
	}
	base := "/admin/v2/persistent/public/default/" + topic + "-partition-0"
	_, body := httpGet(t, s, base+"/internalStats")
	var st struct {
		Ledgers []struct {
			LedgerID     int64 `json:"ledgerId"`
			LocalDeleted bool  `json:"localDeleted"`
		} `json:"ledgers"`
	}
	json.Unmarshal([]byte(body), &st)
	offloadedOnly := false
	for _, l := range st.Ledgers {
		offloadedOnly = offloadedOnly || l.LedgerID == id.LedgerID() && l.LocalDeleted
	}
	if !offloadedOnly {
		t.Fatalf("ledger %d of the first Pulsar message is not offloaded-only: %s", id.LedgerID(), body)
	}
	code, body := httpGet(t, s, fmt.Sprintf("%s/ledger/%d/entry/%d", base, id.LedgerID(), id.EntryID()))
	if code != 200 || !strings.Contains(body, string(want[300])) {
		t.Fatalf("get-message %v from tiered storage: %d %q", id, code, body)
	}

	// A Pulsar seek back into the offloaded ledgers: the reader goes on
	// from the message sought (or the one after it), gapless.
	if err := r.Seek(id); err != nil {
		t.Fatal(err)
	}
	m, err := r.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k := 300
	if !bytes.Equal(m.Payload(), want[k]) {
		k++
		if !bytes.Equal(m.Payload(), want[k]) {
			t.Fatalf("after a seek to message 300: %q", m.Payload())
		}
	}
	readPulsar(ctx, t, r, want[k+1:k+50])
}

// consumeKafka reads want from offset 0, in order, byte-exact, and
// returns the records' timestamps (unix ms).
func consumeKafka(ctx context.Context, t *testing.T, s *Server, topic string, want [][]byte) []int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got int
	var ts []int64
	for got < len(want) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kafka: %d of %d records", got, len(want))
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("kafka fetch error: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != int64(got) || !bytes.Equal(r.Value, want[got]) {
				t.Fatalf("kafka record at offset %d = %q, want offset %d %q", r.Offset, r.Value, got, want[got])
			}
			ts = append(ts, r.Timestamp.UnixMilli())
			got++
		})
	}
	return ts
}

func consumePulsar(ctx context.Context, t *testing.T, s *Server, topic string, want [][]byte) {
	t.Helper()
	readPulsar(ctx, t, earliestReader(t, s, topic), want)
}

// earliestReader is a Pulsar reader of the topic's partition 0 from the
// start; it and its client close with the test.
func earliestReader(t *testing.T, s *Server, topic string) pulsar.Reader {
	t.Helper()
	pc, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + s.Addr("pulsar").String(), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	r, err := pc.CreateReader(pulsar.ReaderOptions{Topic: topic + "-partition-0", StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// readPulsar reads want from r, in order, byte-exact.
func readPulsar(ctx context.Context, t *testing.T, r pulsar.Reader, want [][]byte) {
	t.Helper()
	for i := range want {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("pulsar: message %d: %v", i, err)
		}
		if !bytes.Equal(m.Payload(), want[i]) {
			t.Fatalf("pulsar message %d = %q, want %q", i, m.Payload(), want[i])
		}
	}
}

// TestTieredStoreDown: the S3 server stops mid-run. Produce goes on; reads
// of offloaded data fail retriably (Kafka: KAFKA_STORAGE_ERROR; Pulsar: no
// message rather than a later one) and succeed once the server is back,
// with nothing lost or skipped.
func TestTieredStoreDown(t *testing.T) {
	srv := s3test.Start(t)
	dataDir := t.TempDir()
	s := tieredServer(t, dataDir, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "down"
	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	var want [][]byte
	produce := func(n int) {
		for range n {
			v := []byte(fmt.Sprintf("rec-%04d-%s", len(want), strings.Repeat("d", len(want)%101)))
			if err := kc.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: v}).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", len(want), err)
			}
			want = append(want, v)
		}
	}
	produce(300)
	offloadAll(t, s, dataDir, topic)
	// A restart empties the entry cache, which would otherwise serve the
	// recent entries without the store.
	kc.Close()
	s.Close(context.Background())
	s = tieredServer(t, dataDir, srv)
	if kc, err = kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String())); err != nil {
		t.Fatal(err)
	}
	defer kc.Close()

	srv.Stop()
	produce(100) // never blocked by the store

	// A raw fetch from offset 0: the partition-level error is the
	// retriable KAFKA_STORAGE_ERROR.
	if code := rawFetch(ctx, t, kc, topic); code != kerr.KafkaStorageError.Code {
		t.Fatalf("fetch with the store down: error %d, want KAFKA_STORAGE_ERROR", code)
	}
	if !kerr.IsRetriable(kerr.KafkaStorageError) {
		t.Fatal("KAFKA_STORAGE_ERROR is not retriable for franz-go")
	}

	// A Pulsar reader from the start gets nothing while the store is down
	// (never the later, local messages: that would skip).
	r := earliestReader(t, s, topic)
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	if m, err := r.Next(wctx); err == nil {
		t.Fatalf("pulsar reader got %q with the store down", m.Payload())
	}
	wcancel()

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	readPulsar(ctx, t, r, want) // the same reader, once the store is back
	consumeKafka(ctx, t, s, topic, want)
}

// TestTieredAdminPolicies: the namespace offload policies through Pulsar's
// admin REST, bad input refused, and automatic offload by a namespace's
// threshold (0: every sealed ledger) with local deletion (lag 0).
func TestTieredAdminPolicies(t *testing.T) {
	srv := s3test.Start(t)
	dataDir := t.TempDir()
	s := tieredServer(t, dataDir, srv)
	ns := "/admin/v2/namespaces/public/default"
	if code, body := httpGet(t, s, ns+"/offloadThreshold"); code != 200 || body != "-1" {
		t.Fatalf("default offloadThreshold: %d %s", code, body)
	}
	if code, _ := httpGet(t, s, ns+"/offloadPolicies"); code != http.StatusNoContent {
		t.Fatalf("offloadPolicies before any: %d", code)
	}
	for _, bad := range []struct {
		path string
		body any
	}{
		{ns + "/offloadPolicies", map[string]any{"managedLedgerOffloadDriver": "gcs"}},
		{ns + "/offloadPolicies", map[string]any{"managedLedgerDataReadPriority": "sometimes"}},
		{ns + "/offloadPolicies", map[string]any{"s3ManagedLedgerOffloadBucket": "other"}},
	} {
		if code, body := httpJSON(t, s, "POST", bad.path, bad.body); code != http.StatusBadRequest {
			t.Fatalf("POST %s %v: %d %s, want 400", bad.path, bad.body, code, body)
		}
	}
	if code, body := httpJSON(t, s, "PUT", ns+"/offloadThreshold", -5); code != http.StatusPreconditionFailed {
		t.Fatalf("offloadThreshold -5: %d %s, want 412", code, body)
	}
	if code, body := httpJSON(t, s, "POST", ns+"/offloadPolicies", map[string]any{
		"managedLedgerOffloadDriver": "aws-s3", "managedLedgerOffloadDeletionLagInMillis": 0,
		"managedLedgerDataReadPriority": "bookkeeper-first",
	}); code != http.StatusNoContent {
		t.Fatalf("POST offloadPolicies: %d %s", code, body)
	}
	if code, body := httpJSON(t, s, "PUT", ns+"/offloadThreshold", 0); code != http.StatusNoContent {
		t.Fatalf("PUT offloadThreshold: %d %s", code, body)
	}
	code, body := httpGet(t, s, ns+"/offloadPolicies")
	var got map[string]any
	json.Unmarshal([]byte(body), &got)
	if code != 200 || got["managedLedgerOffloadThresholdInBytes"] != 0.0 || got["managedLedgerDataReadPriority"] != "bookkeeper-first" ||
		got["managedLedgerOffloadDeletionLagInMillis"] != 0.0 {
		t.Fatalf("GET offloadPolicies: %d %s", code, body)
	}

	// Automatic offload: the namespace threshold 0 offloads every sealed
	// ledger of a new topic, and the local copies go.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	const topic = "auto"
	var want [][]byte
	for i := range 200 {
		v := []byte(fmt.Sprintf("auto-%04d-%s", i, strings.Repeat("a", i%113)))
		if err := kc.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	if code, body := httpGet(t, s, "/admin/v2/persistent/public/default/"+topic+"-partition-0/offload"); code != 200 ||
		!strings.Contains(body, `"status":"`) {
		t.Fatalf("offload status: %d %s", code, body)
	}
	// The active ledger's file may not exist yet (created by the first
	// checkpoint): at most one local log once the sealed ones are gone.
	waitUntil(t, 30*time.Second, "automatic offload and local deletion", func() bool {
		return localLogs(t, dataDir) <= 1 && objectCount(t, srv) >= 4
	})
	if n := objectCount(t, srv); n < 4 {
		t.Fatalf("%d objects after automatic offload", n)
	}
	consumeKafka(ctx, t, s, topic, want)

	// Offload without tiered storage is refused with a reason.
	plain := startStorageServer(t, t.TempDir(), nil)
	kp, err := kgo.NewClient(kgo.SeedBrokers(plain.Addr("kafka").String()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer kp.Close()
	if err := kp.ProduceSync(ctx, &kgo.Record{Topic: "x", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if code, body := httpJSON(t, plain, "PUT", "/admin/v2/persistent/public/default/x-partition-0/offload",
		map[string]any{"ledgerId": 1, "entryId": 0}); code != http.StatusMethodNotAllowed || !strings.Contains(body, "not configured") {
		t.Fatalf("offload without tiered storage: %d %s", code, body)
	}
}
