package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// getJSON GETs an admin path and decodes its JSON answer into v.
func getJSON(t *testing.T, s *Server, path string, v any) {
	t.Helper()
	status, body := httpGet(t, s, path)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// series returns the value of every gathered series of metric name whose
// labels include want, keyed by its labels ("k=v,..." sorted as gathered).
func series(t *testing.T, s *Server, name string, want map[string]string) map[string]float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			var key []string
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			out[strings.Join(key, ",")] = sampleValue(m)
		}
	}
	return out
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// one returns the single series of name matching want.
func one(t *testing.T, s *Server, name string, want map[string]string) float64 {
	t.Helper()
	got := series(t, s, name, want)
	if len(got) != 1 {
		t.Fatalf("%s%v: %d series %v", name, want, len(got), got)
	}
	for _, v := range got {
		return v
	}
	return 0
}

// testClients are a Pulsar client, one unbatched Pulsar producer on a
// topic and a franz-go client of s; cleanup closes them.
type testClients struct {
	pulsar   pulsar.Client
	producer pulsar.Producer
	kafka    *kgo.Client
}

func newTestClients(t *testing.T, s *Server, pulsarTopic string, kopts ...kgo.Opt) *testClients {
	t.Helper()
	pcl, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + s.Addr("pulsar").String(), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pcl.Close)
	c := &testClients{pulsar: pcl}
	if pulsarTopic != "" {
		if c.producer, err = pcl.CreateProducer(pulsar.ProducerOptions{Topic: pulsarTopic, DisableBatching: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.producer.Close)
	}
	if c.kafka, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.Addr("kafka").String())}, kopts...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.kafka.Close)
	return c
}

// sendPulsar sends n messages "<prefix><i>" with the Pulsar producer.
func (c *testClients) sendPulsar(ctx context.Context, t *testing.T, n int, prefix string) {
	t.Helper()
	for i := range n {
		if _, err := c.producer.Send(ctx, &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, "%s%d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// produceKafka produces n records "<prefix><i>" to topic.
func (c *testClients) produceKafka(ctx context.Context, t *testing.T, topic string, n int, prefix string) {
	t.Helper()
	for i := range n {
		if err := c.kafka.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s%d", prefix, i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// commit commits group's offset on partition 0 of topic.
func (c *testClients) commit(ctx context.Context, t *testing.T, group, topic string, at int64) {
	t.Helper()
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: at, LeaderEpoch: -1})
	if r, err := kadm.NewClient(c.kafka).CommitOffsets(ctx, group, offs); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}
}

type statsView struct {
	Publishers []struct {
		ProducerName               string
		MsgRateIn, MsgThroughputIn float64
	}
	MsgRateIn, MsgRateOut, MsgThroughputOut float64
	MsgInCounter, MsgOutCounter             int64
	BytesInCounter, BytesOutCounter         int64
	StorageSize                             int64
	Subscriptions                           map[string]struct {
		MsgOutCounter, BytesOutCounter, MsgBacklog, UnackedMessages int64
		Consumers                                                   []struct {
			ConsumerName                     string
			AvailablePermits, MsgOutCounter  int64
			UnackedMessages, BytesOutCounter int64
		}
	}
}

// TestStatsAndMetricsAgree: Pulsar and Kafka clients produce to and consume
// from one topic; the admin stats count what was sent out (both protocols),
// a Pulsar consumer's permits, and /metrics reports the same numbers under
// Pulsar's names.
func TestStatsAndMetricsAgree(t *testing.T) {
	s := startStorageServer(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "persistent://public/default/observed"

	c := newTestClients(t, s, topic, kgo.ConsumeTopics("observed"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	c.sendPulsar(ctx, t, 10, "p")
	c.produceKafka(ctx, t, "observed", 5, "k")

	// Both protocols read all 15.
	pc, err := c.pulsar.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "obs-sub",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for range 15 {
		m, err := pc.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pc.Ack(m)
	}
	for n := 0; n < 15; {
		fs := c.kafka.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}

	var st statsView
	for deadline := time.Now().Add(10 * time.Second); ; {
		getJSON(t, s, "/admin/v2/persistent/public/default/observed/stats", &st)
		if st.Subscriptions["obs-sub"].MsgBacklog == 0 || time.Now().After(deadline) {
			break // acks are grouped by the client: wait until they arrived
		}
		time.Sleep(50 * time.Millisecond)
	}
	sub := st.Subscriptions["obs-sub"]
	if st.MsgInCounter != 15 || st.MsgOutCounter != 30 || st.BytesOutCounter <= 0 || sub.MsgOutCounter != 15 || sub.BytesOutCounter <= 0 {
		t.Fatalf("counters: topic in %d out %d (%d bytes), subscription out %d (%d bytes); want 15, 30, 15",
			st.MsgInCounter, st.MsgOutCounter, st.BytesOutCounter, sub.MsgOutCounter, sub.BytesOutCounter)
	}
	if sub.MsgBacklog != 0 || sub.UnackedMessages != 0 {
		t.Fatalf("backlog %d, unacked %d after all acks", sub.MsgBacklog, sub.UnackedMessages)
	}
	if len(sub.Consumers) != 1 || sub.Consumers[0].AvailablePermits <= 0 || sub.Consumers[0].MsgOutCounter != 15 {
		t.Fatalf("consumers %+v: want one with permits and 15 messages out", sub.Consumers)
	}

	// /metrics: the same numbers.
	tl := map[string]string{"cluster": "standalone", "namespace": "public/default", "topic": topic}
	sl := map[string]string{"topic": topic, "subscription": "obs-sub"}
	for name, want := range map[string]float64{
		"pulsar_in_messages_total":               15,
		"pulsar_out_messages_total":              30,
		"pulsar_in_bytes_total":                  float64(st.BytesInCounter),
		"pulsar_out_bytes_total":                 float64(st.BytesOutCounter),
		"pulsar_storage_size":                    float64(st.StorageSize),
		"pulsar_subscriptions_count":             1,
		"pulsar_producers_count":                 2, // the Pulsar producer and the Kafka one (publishers)
		"pulsar_consumers_count":                 1,
		"pulsar_msg_backlog":                     0,
		"pulsar_subscription_out_messages_total": -1,
		"pulsar_subscription_back_log":           -1,
		"pulsar_consumer_available_permits":      -1,
	} {
		labels := tl
		switch {
		case strings.HasPrefix(name, "pulsar_subscription_"):
			labels, want = sl, map[string]float64{
				"pulsar_subscription_out_messages_total": 15, "pulsar_subscription_back_log": 0,
			}[name]
		case strings.HasPrefix(name, "pulsar_consumer_"):
			labels, want = sl, float64(sub.Consumers[0].AvailablePermits)
		}
		if got := one(t, s, name, labels); got != want {
			t.Errorf("%s = %v, the admin stats say %v", name, got, want)
		}
	}
	if n := one(t, s, "kopernik_storage_append_latency_seconds", nil); n < 15 {
		t.Errorf("append latency histogram: %v observations, want >= 15", n)
	}
	if one(t, s, "kopernik_storage_disk_bytes", nil) <= 0 {
		t.Error("no bytes on disk")
	}
	if got := one(t, s, "kopernik_connections", map[string]string{"protocol": "pulsar"}); got != 1 {
		t.Errorf("pulsar connections %v, want 1", got)
	}
	if got := series(t, s, "kopernik_kafka_requests_total", map[string]string{"api": "Fetch"}); len(got) != 1 {
		t.Errorf("no Fetch request count: %v", got)
	}

	// A refused request counts under its API and error code.
	if _, err := kadm.NewClient(c.kafka).DeleteTopics(ctx, "no-such-topic"); err != nil {
		t.Fatal(err)
	}
	if got := one(t, s, "kopernik_kafka_request_errors_total", map[string]string{"api": "DeleteTopics", "error": "UNKNOWN_TOPIC_OR_PARTITION"}); got != 1 {
		t.Errorf("DeleteTopics UNKNOWN_TOPIC_OR_PARTITION errors: %v, want 1", got)
	}
	dashboardNamesExported(t, s)

	// Rates are measured over a window: 0 at first, then what was sent.
	c.sendPulsar(ctx, t, 10, "more")
	time.Sleep(5100 * time.Millisecond)
	getJSON(t, s, "/admin/v2/persistent/public/default/observed/stats", &st)
	pulsarRate := 0.0
	for _, p := range st.Publishers {
		if !strings.HasPrefix(p.ProducerName, "kafka-") {
			pulsarRate = p.MsgRateIn
		}
	}
	if st.MsgRateIn <= 0 || len(st.Publishers) != 2 || pulsarRate <= 0 {
		t.Fatalf("msgRateIn %v, publishers %+v after a window with 10 messages in", st.MsgRateIn, st.Publishers)
	}
	// Within the window both read the same measurement.
	if got := one(t, s, "pulsar_rate_in", tl); got != st.MsgRateIn {
		t.Errorf("pulsar_rate_in %v, the admin stats say %v", got, st.MsgRateIn)
	}
	pl := map[string]string{"topic": topic, "producer_name": st.Publishers[0].ProducerName}
	if got := one(t, s, "pulsar_producer_msg_rate_in", pl); got != st.Publishers[0].MsgRateIn {
		t.Errorf("pulsar_producer_msg_rate_in %v, the admin stats say %v", got, st.Publishers[0].MsgRateIn)
	}
}

// TestMetricsPerNamespace: with expose-topic-level-metrics false, topic
// series are summed per namespace and no subscription series exist.
func TestMetricsPerNamespace(t *testing.T) {
	s := startStorageServer(t, t.TempDir(), nil, "expose-topic-level-metrics", "false")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newTestClients(t, s, "", kgo.AllowAutoTopicCreation())
	c.produceKafka(ctx, t, "a", 3, "v")
	c.produceKafka(ctx, t, "b", 3, "v")
	// A group's commit: a subscription with a backlog (lag) of 2.
	c.commit(ctx, t, "g", "a", 1)
	ns := map[string]string{"cluster": "standalone", "namespace": "public/default"}
	for name, want := range map[string]float64{
		"pulsar_in_messages_total": 6, "pulsar_subscriptions_count": 1, "pulsar_msg_backlog": 2,
	} {
		got := series(t, s, name, nil)
		if len(got) != 1 || got["cluster=standalone,namespace=public/default"] != want {
			t.Errorf("%s per namespace: %v, want one series of %v", name, got, want)
		}
	}
	if n := one(t, s, "pulsar_topics_count", ns); n < 2 {
		t.Errorf("pulsar_topics_count %v", n)
	}
	if got := series(t, s, "pulsar_subscription_back_log", nil); len(got) != 0 {
		t.Errorf("subscription series per namespace: %v", got)
	}
}

// dashboardNamesExported: every metric the Grafana dashboard queries is
// one the broker exports (checked on a broker that has seen traffic of
// both protocols, so that every family has series).
func dashboardNamesExported(t *testing.T, s *Server) {
	t.Helper()
	raw, err := os.ReadFile("../docs/grafana/kopernik.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	name := regexp.MustCompile(`\b(?:pulsar|kopernik)_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, n := range name.FindAllString(target.Expr, -1) {
				queried++
				base := n
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(n, suffix); ok && exported[b] {
						base = b
					}
				}
				if !exported[base] {
					t.Errorf("dashboard panel %q queries %s, which the broker does not export", p.Title, n)
				}
			}
		}
	}
	if queried == 0 {
		t.Fatal("no metric found in the dashboard")
	}
}

// scraped returns the value of metric name's series whose labels include
// topic="topic", read from the text GET /metrics serves (-1: no such
// series).
func scraped(t *testing.T, s *Server, name, topic string) float64 {
	t.Helper()
	status, body := httpGet(t, s, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok || !strings.Contains(rest, `topic="`+topic+`"`) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	return -1
}

// TestCompactionMetrics: a compaction run through the admin API shows on
// /metrics (runs, records removed, bytes before and after, duration, the
// view's entries, size and cleaned offset) with the numbers the admin
// stats give; a topic that does not compact has no compaction series.
func TestCompactionMetrics(t *testing.T) {
	s := startStorageServer(t, t.TempDir(), nil, "compaction-interval", "-1s")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newTestClients(t, s, "", kgo.AllowAutoTopicCreation())
	if _, err := kadm.NewClient(c.kafka).CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, "metered"); err != nil {
		t.Fatal(err)
	}
	const records, keys = 200, 10
	var recs []*kgo.Record
	for i := range records {
		recs = append(recs, &kgo.Record{Topic: "metered", Key: []byte(fmt.Sprintf("k%d", i%keys)), Value: []byte(fmt.Sprintf("value %d", i))})
	}
	for i := 0; i < records; i += 20 { // 10 batches
		if err := c.kafka.ProduceSync(ctx, recs[i:i+20]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c.produceKafka(ctx, t, "plain", 3, "v")
	const topic = "persistent://public/default/metered-partition-0"
	if got := scraped(t, s, "pulsar_compaction_succeed_count", topic); got != 0 {
		t.Fatalf("pulsar_compaction_succeed_count before any compaction: %v, want 0", got)
	}

	req, _ := http.NewRequest(http.MethodPut, "http://"+s.Addr("http").String()+"/admin/v2/persistent/public/default/metered-partition-0/compaction", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT compaction: %d", resp.StatusCode)
	}
	var status struct{ Status, LastError string }
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		getJSON(t, s, "/admin/v2/persistent/public/default/metered-partition-0/compaction", &status)
		if status.Status == "SUCCESS" || status.Status == "ERROR" || time.Now().After(deadline) {
			break
		}
	}
	if status.Status != "SUCCESS" {
		t.Fatalf("compaction status %+v", status)
	}
	var st struct {
		Compaction struct {
			LastCompactionRemovedEventCount   int64
			LastCompactionDurationTimeInMills int64
		}
	}
	getJSON(t, s, "/admin/v2/persistent/public/default/metered-partition-0/stats", &st)

	for name, check := range map[string]func(float64) bool{
		"pulsar_compaction_succeed_count": func(v float64) bool { return v == 1 },
		"pulsar_compaction_failed_count":  func(v float64) bool { return v == 0 },
		"pulsar_compaction_removed_event_count": func(v float64) bool {
			return v == records-keys && v == float64(st.Compaction.LastCompactionRemovedEventCount)
		},
		"pulsar_compaction_duration_time_in_mills":  func(v float64) bool { return v >= 0 && v == float64(st.Compaction.LastCompactionDurationTimeInMills) },
		"pulsar_compaction_compacted_entries_count": func(v float64) bool { return v == 1 }, // the last batch holds every key's latest
		"pulsar_compaction_compacted_entries_size":  func(v float64) bool { return v > 0 },
		"kopernik_compaction_cleaned_offset":        func(v float64) bool { return v == records },
	} {
		if v := scraped(t, s, name, topic); !check(v) {
			t.Errorf("%s = %v (admin stats %+v)", name, v, st.Compaction)
		}
	}
	in, out := scraped(t, s, "kopernik_compaction_bytes_in_total", topic), scraped(t, s, "kopernik_compaction_bytes_out_total", topic)
	if out <= 0 || in < 10*out {
		t.Errorf("compaction bytes in %v, out %v: want 10 batches in, one out", in, out)
	}
	if v := scraped(t, s, "kopernik_compaction_released_bytes_total", topic); v < 0 {
		t.Errorf("kopernik_compaction_released_bytes_total missing")
	}
	if v := scraped(t, s, "pulsar_compaction_succeed_count", "persistent://public/default/plain-partition-0"); v != -1 {
		t.Errorf("a topic that does not compact has compaction series: %v", v)
	}
}
