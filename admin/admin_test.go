package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
)

// newTestServer serves the admin API of a real broker over memory storage.
func newTestServer(t *testing.T) (*httptest.Server, *broker.Broker) {
	t.Helper()
	ctx := context.Background()
	store := metadata.NewMemory()
	f, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(ctx, broker.Options{Store: store, Ledgers: f, RetentionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(b, Options{BrokerURL: "pulsar://broker:6650", HTTPURL: "http://broker:8080"}))
	t.Cleanup(func() { srv.Close(); b.Close(); f.Close(); store.Close() })
	return srv, b
}

// call is one request and the expected answer: status, and the body (JSON,
// compared as values) when want is not empty.
type call struct {
	method, path, body string
	status             int
	want               string
}

func runCalls(t *testing.T, srv *httptest.Server, calls []call) {
	t.Helper()
	for _, c := range calls {
		status, body := do(t, srv, c.method, c.path, c.body)
		if status != c.status {
			t.Errorf("%s %s: status %d, want %d (body %s)", c.method, c.path, status, c.status, body)
			continue
		}
		if status >= 400 {
			var e struct{ Reason string }
			if err := json.Unmarshal(body, &e); err != nil || e.Reason == "" {
				t.Errorf("%s %s: error body %q is not {\"reason\": ...}", c.method, c.path, body)
			}
		}
		if c.want != "" && !jsonEqual(t, body, c.want) {
			t.Errorf("%s %s: body %s, want %s", c.method, c.path, body, c.want)
		}
	}
}

func do(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func getJSON(t *testing.T, srv *httptest.Server, path string, v any) {
	t.Helper()
	status, body := do(t, srv, "GET", path, "")
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

func TestTenantsAndNamespaces(t *testing.T) {
	srv, _ := newTestServer(t)
	runCalls(t, srv, []call{
		{"GET", "/admin/v2/tenants", "", 200, `["public"]`},
		{"PUT", "/admin/v2/tenants/acme", `{"adminRoles":["root"],"allowedClusters":["standalone"]}`, 204, ""},
		{"PUT", "/admin/v2/tenants/acme", `{}`, 409, ""},
		{"PUT", "/admin/v2/tenants/bad%20name", `{}`, 412, ""},
		{"PUT", "/admin/v2/tenants/x", `{not json`, 400, ""},
		{"GET", "/admin/v2/tenants/acme", "", 200, `{"adminRoles":["root"],"allowedClusters":["standalone"]}`},
		{"GET", "/admin/v2/tenants/nope", "", 404, ""},
		{"POST", "/admin/v2/tenants/acme", `{"adminRoles":["ops"],"allowedClusters":[]}`, 204, ""},
		{"GET", "/admin/v2/tenants/acme", "", 200, `{"adminRoles":["ops"],"allowedClusters":[]}`},
		{"POST", "/admin/v2/tenants/nope", `{}`, 404, ""},
		{"GET", "/admin/v2/tenants", "", 200, `["acme","public"]`},
		{"GET", "/admin/v2/clusters", "", 200, `["standalone"]`},

		{"GET", "/admin/v2/namespaces/acme", "", 200, `[]`},
		{"GET", "/admin/v2/namespaces/nope", "", 404, ""},
		{"PUT", "/admin/v2/namespaces/acme/app", "", 204, ""},
		{"PUT", "/admin/v2/namespaces/acme/app", "", 409, ""},
		{"PUT", "/admin/v2/namespaces/nope/app", "", 404, ""},
		{"PUT", "/admin/v2/namespaces/acme/db", `{"retention_policies":{"retentionTimeInMinutes":60,"retentionSizeInMB":-1}}`, 204, ""},
		{"GET", "/admin/v2/namespaces/acme", "", 200, `["acme/app","acme/db"]`},
		{"GET", "/admin/v2/namespaces/acme/db/retention", "", 200, `{"retentionTimeInMinutes":60,"retentionSizeInMB":-1}`},
		{"GET", "/admin/v2/namespaces/acme/app/retention", "", 204, ""},
		{"POST", "/admin/v2/namespaces/acme/app/retention", `{"retentionTimeInMinutes":-1,"retentionSizeInMB":100}`, 204, ""},
		{"GET", "/admin/v2/namespaces/acme/app/retention", "", 200, `{"retentionTimeInMinutes":-1,"retentionSizeInMB":100}`},
		{"POST", "/admin/v2/namespaces/acme/app/retention", ``, 400, ""},
		{"POST", "/admin/v2/namespaces/acme/nope/retention", `{"retentionTimeInMinutes":1,"retentionSizeInMB":1}`, 404, ""},
		{"DELETE", "/admin/v2/namespaces/acme/app/retention", "", 204, ""},
		{"GET", "/admin/v2/namespaces/acme/app/retention", "", 204, ""},
		{"POST", "/admin/v2/namespaces/acme/app/autoTopicCreation", `{"allowAutoTopicCreation":true,"topicType":"partitioned","defaultNumPartitions":3}`, 204, ""},
		{"GET", "/admin/v2/namespaces/acme/app", "", 200,
			`{"autoTopicCreationOverride":{"allowAutoTopicCreation":true,"topicType":"partitioned","defaultNumPartitions":3},"replication_clusters":["standalone"],` +
				`"auth_policies":{"namespace_auth":{},"destination_auth":{},"subscription_auth_roles":{}}}`},
		{"POST", "/admin/v2/namespaces/acme/app/autoTopicCreation", `{"allowAutoTopicCreation":true,"topicType":"partitioned"}`, 400, ""},

		{"DELETE", "/admin/v2/tenants/acme", "", 409, ""},
		{"PUT", "/admin/v2/persistent/acme/app/t1", "", 204, ""},
		{"DELETE", "/admin/v2/namespaces/acme/app", "", 409, ""},
		{"DELETE", "/admin/v2/namespaces/acme/app?force=true", "", 204, ""},
		{"DELETE", "/admin/v2/namespaces/acme/db", "", 204, ""},
		{"DELETE", "/admin/v2/namespaces/acme/db", "", 404, ""},
		{"DELETE", "/admin/v2/tenants/acme", "", 204, ""},
		{"DELETE", "/admin/v2/tenants/acme", "", 404, ""},
		{"GET", "/admin/v2/nothing/here", "", 404, ""},
	})
}

func TestTopics(t *testing.T) {
	srv, _ := newTestServer(t)
	base := "/admin/v2/persistent/public/default"
	runCalls(t, srv, []call{
		{"GET", base, "", 200, `[]`},
		{"PUT", base + "/plain", "", 204, ""},
		{"PUT", base + "/plain", "", 409, ""},
		{"PUT", base + "/parted/partitions", "3", 204, ""},
		{"PUT", base + "/parted/partitions", "3", 409, ""},
		{"PUT", base + "/obj/partitions", `{"partitions":2,"properties":null}`, 204, ""},
		{"PUT", base + "/zero/partitions", "0", 412, ""},
		{"PUT", base + "/bad/partitions", `"x"`, 400, ""},
		{"PUT", base + "/x-partition-1/partitions", "2", 412, ""},
		{"PUT", "/admin/v2/persistent/public/nope/t", "", 404, ""},
		{"GET", base + "/parted/partitions", "", 200, `{"partitions":3}`},
		{"GET", base + "/plain/partitions", "", 200, `{"partitions":0}`},
		{"GET", base + "/missing/partitions", "", 200, `{"partitions":0}`},
		{"GET", base + "/parted-partition-1/partitions", "", 200, `{"partitions":0}`},
		{"GET", base + "/auto/partitions?checkAllowAutoCreation=true", "", 200, `{"partitions":0}`},
		{"PUT", base + "/auto", "", 409, ""}, // created by the metadata request
		{"GET", "/admin/v2/namespaces/public/default/topics?mode=PERSISTENT", "", 200,
			`["persistent://public/default/auto","persistent://public/default/obj-partition-0","persistent://public/default/obj-partition-1",
			"persistent://public/default/parted-partition-0","persistent://public/default/parted-partition-1",
			"persistent://public/default/parted-partition-2","persistent://public/default/plain"]`},
		{"GET", "/admin/v2/namespaces/public/default/topics?mode=NON_PERSISTENT", "", 200, `[]`},
		{"GET", "/admin/v2/namespaces/public/nope/topics?mode=PERSISTENT", "", 404, ""},
		{"POST", base + "/parted/partitions", "4", 204, ""},
		{"POST", base + "/parted/partitions", "2", 412, ""},
		{"POST", base + "/plain/partitions", "2", 412, ""},
		{"POST", base + "/missing/partitions", "2", 404, ""},
		{"GET", base + "/parted/partitions", "", 200, `{"partitions":4}`},
		{"GET", base + "/partitioned", "", 200,
			`["persistent://public/default/obj","persistent://public/default/parted"]`},
		{"GET", base, "", 200, `["persistent://public/default/auto","persistent://public/default/obj-partition-0","persistent://public/default/obj-partition-1",
			"persistent://public/default/parted-partition-0","persistent://public/default/parted-partition-1",
			"persistent://public/default/parted-partition-2","persistent://public/default/parted-partition-3",
			"persistent://public/default/plain"]`},
		{"GET", "/admin/v2/non-persistent/public/default", "", 200, `[]`},
		{"GET", "/admin/v2/non-persistent/public/default/partitioned", "", 200, `[]`},
		{"GET", "/admin/v2/non-persistent/public/nope", "", 404, ""},
		{"GET", "/admin/v2/namespaces/public/default/topics", "", 200, ""},
		{"GET", base + "/plain/lastMessageId", "", 200, `{"ledgerId":0,"entryId":-1,"partitionIndex":-1}`},
		{"PUT", base + "/parted/unload", "", 204, ""},
		{"PUT", base + "/plain/unload", "", 204, ""},
		{"PUT", base + "/missing/unload", "", 404, ""},
		{"DELETE", base + "/parted-partition-0", "", 412, ""},
		{"DELETE", base + "/parted/partitions", "", 204, ""},
		{"DELETE", base + "/parted/partitions", "", 404, ""},
		{"DELETE", base + "/obj", "", 204, ""},
		{"DELETE", base + "/plain?force=true", "", 204, ""},
		{"DELETE", base + "/auto", "", 204, ""},
		{"GET", base, "", 200, `[]`},
		{"GET", "/lookup/v2/topic/persistent/public/default/any", "", 200,
			`{"brokerUrl":"pulsar://broker:6650","httpUrl":"http://broker:8080","nativeUrl":"pulsar://broker:6650"}`},
		{"GET", "/lookup/v2/topic/persistent/public/nope/any", "", 404, ""},
		{"GET", "/admin/v2/brokers/health", "", 200, ""},
	})
}

func TestDeleteTopicInUse(t *testing.T) {
	srv, b := newTestServer(t)
	ctx := context.Background()
	name, _ := broker.ParseTopicName("busy", "public", "default")
	p, err := b.OpenPartition(ctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	detach := p.Attach()
	base := "/admin/v2/persistent/public/default"
	runCalls(t, srv, []call{{"DELETE", base + "/busy", "", 412, ""}})
	detach()
	runCalls(t, srv, []call{{"DELETE", base + "/busy", "", 204, ""}})
}

// produce appends n single-message batches with the given event times.
func produce(t *testing.T, p *broker.Partition, times ...int64) []broker.Entry {
	t.Helper()
	var out []broker.Entry
	for _, ts := range times {
		r, err := p.Append(context.Background(), broker.AppendRequest{Format: broker.FormatKafka, MsgCount: 1, MaxEventTime: ts, Data: []byte("0123456789")})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.Entry)
	}
	return out
}

func TestSubscriptionsAndStats(t *testing.T) {
	srv, b := newTestServer(t)
	ctx := context.Background()
	base := "/admin/v2/persistent/public/default"
	runCalls(t, srv, []call{
		{"PUT", base + "/t", "", 204, ""},
		{"PUT", base + "/t/subscription/latest", "", 204, ""},
		{"PUT", base + "/t/subscription/latest", "", 409, ""},
		{"PUT", base + "/t/subscription/early", `{"ledgerId":-1,"entryId":-1,"partitionIndex":-1}`, 204, ""},
		{"PUT", base + "/missing/subscription/s", "", 404, ""},
	})
	name, _ := broker.ParseTopicName("t", "public", "default")
	p, err := b.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	es := produce(t, p, 1000, 2000, 3000, 4000)
	pos := es[2].Position
	runCalls(t, srv, []call{
		{"PUT", base + "/t/subscription/at2", `{"ledgerId":` + itoa(pos.LedgerID) + `,"entryId":` + itoa(pos.EntryID) + `,"partitionIndex":-1}`, 204, ""},
		{"GET", base + "/t/subscriptions", "", 200, `["at2","early","latest"]`},
	})
	backlog := func(sub string) int64 {
		t.Helper()
		var st topicStats
		getJSON(t, srv, base+"/t/stats", &st)
		ss, ok := st.Subscriptions[sub]
		if !ok {
			t.Fatalf("no stats for %s: %+v", sub, st)
		}
		return ss.MsgBacklog
	}
	for sub, want := range map[string]int64{"latest": 4, "early": 4, "at2": 2} {
		if got := backlog(sub); got != want {
			t.Errorf("%s backlog %d, want %d", sub, got, want)
		}
	}

	// Reset by time: the first entry at or after 2500 is the third.
	runCalls(t, srv, []call{
		{"POST", base + "/t/subscription/early/resetcursor/2500", "", 204, ""},
		{"POST", base + "/t/subscription/early/resetcursor/notanumber", "", 400, ""},
		{"POST", base + "/t/subscription/nope/resetcursor/2500", "", 404, ""},
	})
	if got := backlog("early"); got != 2 {
		t.Errorf("backlog after reset by time %d, want 2", got)
	}
	runCalls(t, srv, []call{
		{"POST", base + "/t/subscription/early/resetcursor", `{"ledgerId":` + itoa(es[0].Position.LedgerID) + `,"entryId":` + itoa(es[0].Position.EntryID) + `}`, 204, ""},
	})
	if got := backlog("early"); got != 4 {
		t.Errorf("backlog after reset to the first message %d, want 4", got)
	}
	runCalls(t, srv, []call{
		{"POST", base + "/t/subscription/early/resetcursor", `{"ledgerId":` + itoa(es[0].Position.LedgerID) + `,"entryId":` + itoa(es[0].Position.EntryID) + `,"isExcluded":true}`, 204, ""},
	})
	if got := backlog("early"); got != 3 {
		t.Errorf("backlog after excluded reset %d, want 3", got)
	}
	runCalls(t, srv, []call{{"POST", base + "/t/subscription/early/skip_all", "", 204, ""}})
	if got := backlog("early"); got != 0 {
		t.Errorf("backlog after skip_all %d, want 0", got)
	}

	// Attached clients show up in the stats.
	prod, err := p.AddProducer(ctx, broker.ProducerSpec{Info: broker.ProducerInfo{Name: "prod-1", Protocol: "pulsar", Address: "10.0.0.1:5000"}, TopicEpoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := p.Subscription(ctx, "latest", false, broker.InitialLatest)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := sub.AddConsumer(ctx, broker.ConsumerSpec{Info: broker.ConsumerInfo{Name: "cons-1", Type: "Shared"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st topicStats
	getJSON(t, srv, base+"/t/stats", &st)
	if st.MsgInCounter != 4 || st.BytesInCounter != 40 || st.StorageSize < 40 {
		t.Errorf("counters: %+v", st)
	}
	if len(st.Publishers) != 1 || st.Publishers[0].ProducerName != "prod-1" || st.Publishers[0].Address != "10.0.0.1:5000" {
		t.Errorf("publishers: %+v", st.Publishers)
	}
	if ss := st.Subscriptions["latest"]; ss.Type != "Shared" || len(ss.Consumers) != 1 || ss.Consumers[0].ConsumerName != "cons-1" || !ss.IsDurable {
		t.Errorf("subscription stats: %+v", ss)
	}
	runCalls(t, srv, []call{
		{"DELETE", base + "/t/subscription/latest", "", 412, ""},
		{"GET", base + "/t/partitioned-stats", "", 404, ""},
	})
	cons.Close()
	prod.Close()
	runCalls(t, srv, []call{
		{"DELETE", base + "/t/subscription/latest", "", 204, ""},
		{"DELETE", base + "/t/subscription/latest", "", 404, ""},
		{"DELETE", base + "/t/subscription/at2?force=true", "", 204, ""},
		{"GET", base + "/t/subscriptions", "", 200, `["early"]`},
	})
}

func TestPartitionedSubscriptionsAndStats(t *testing.T) {
	srv, b := newTestServer(t)
	ctx := context.Background()
	base := "/admin/v2/persistent/public/default"
	runCalls(t, srv, []call{
		{"PUT", base + "/pt/partitions", "2", 204, ""},
		{"PUT", base + "/pt/subscription/g", `{"ledgerId":-1,"entryId":-1,"partitionIndex":-1}`, 204, ""},
	})
	name, _ := broker.ParseTopicName("pt", "public", "default")
	for i, n := range []int{3, 2} {
		p, err := b.OpenPartition(ctx, name.Partition(i), false)
		if err != nil {
			t.Fatal(err)
		}
		produce(t, p, make([]int64, n)...)
	}
	var ps partitionedTopicStats
	getJSON(t, srv, base+"/pt/partitioned-stats", &ps)
	if ps.Metadata.Partitions != 2 || ps.MsgInCounter != 5 || len(ps.Partitions) != 2 {
		t.Fatalf("partitioned stats: %+v", ps)
	}
	if g := ps.Subscriptions["g"]; g.MsgBacklog != 5 {
		t.Fatalf("aggregated backlog %d, want 5", g.MsgBacklog)
	}
	if p1 := ps.Partitions["persistent://public/default/pt-partition-1"]; p1.Subscriptions["g"].MsgBacklog != 2 {
		t.Fatalf("partition 1 stats: %+v", p1)
	}
	getJSON(t, srv, base+"/pt/partitioned-stats?perPartition=false", &ps)
	var st topicStats
	getJSON(t, srv, base+"/pt-partition-0/stats", &st)
	if st.Subscriptions["g"].MsgBacklog != 3 {
		t.Fatalf("partition 0 stats: %+v", st)
	}
	runCalls(t, srv, []call{
		{"GET", base + "/pt/subscriptions", "", 200, `["g"]`},
		{"GET", base + "/pt-partition-1/subscriptions", "", 200, `["g"]`},
		{"POST", base + "/pt/subscription/g/skip_all", "", 204, ""},
		{"POST", base + "/pt/partitions", "3", 204, ""},
		{"DELETE", base + "/pt/subscription/g", "", 204, ""},
		{"GET", base + "/pt/subscriptions", "", 200, `[]`},
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestSkipExpireAndTopicRetention(t *testing.T) {
	srv, b := newTestServer(t)
	ctx := context.Background()
	base := "/admin/v2/persistent/public/default"
	runCalls(t, srv, []call{
		{"PUT", base + "/t", "", 204, ""},
		{"PUT", base + "/t/subscription/s", `{"ledgerId":-1,"entryId":-1}`, 204, ""},
	})
	name, _ := broker.ParseTopicName("t", "public", "default")
	p, err := b.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	hour := time.Hour.Milliseconds()
	produce(t, p, now-3*hour, now-2*hour, now-hour/2, now)
	backlog := func() int64 {
		t.Helper()
		var st topicStats
		getJSON(t, srv, base+"/t/stats", &st)
		return st.Subscriptions["s"].MsgBacklog
	}
	runCalls(t, srv, []call{{"POST", base + "/t/subscription/s/skip/1", "", 204, ""}})
	if got := backlog(); got != 3 {
		t.Fatalf("backlog after skip 1: %d", got)
	}
	// Older than 90 minutes: the first two messages; one is already skipped.
	runCalls(t, srv, []call{{"POST", base + "/t/subscription/s/expireMessages/5400", "", 204, ""}})
	if got := backlog(); got != 2 {
		t.Fatalf("backlog after expiring 90 minutes: %d", got)
	}
	// Expiry never moves the subscription back.
	runCalls(t, srv, []call{{"POST", base + "/t/subscription/s/expireMessages/36000", "", 204, ""}})
	if got := backlog(); got != 2 {
		t.Fatalf("backlog after a longer expiry: %d", got)
	}
	runCalls(t, srv, []call{
		{"POST", base + "/t/subscription/s/skip/100", "", 204, ""},
		{"POST", base + "/t/subscription/s/skip/x", "", 400, ""},
		{"POST", base + "/t/subscription/s/expireMessages/-1", "", 400, ""},
		{"POST", base + "/t/subscription/nope/skip/1", "", 404, ""},
	})
	if got := backlog(); got != 0 {
		t.Fatalf("backlog after skipping past the end: %d", got)
	}

	runCalls(t, srv, []call{
		{"GET", base + "/t/retention", "", 204, ""},
		{"POST", base + "/t/retention", `{"retentionTimeInMinutes":30,"retentionSizeInMB":10}`, 204, ""},
		{"GET", base + "/t/retention", "", 200, `{"retentionTimeInMinutes":30,"retentionSizeInMB":10}`},
		{"POST", base + "/missing/retention", `{"retentionTimeInMinutes":30,"retentionSizeInMB":10}`, 404, ""},
	})
	if eff := p.Policies(); eff.RetentionTime != 30*time.Minute || eff.RetentionBytes != 10<<20 {
		t.Fatalf("loaded partition policies %+v", eff)
	}
	runCalls(t, srv, []call{
		{"DELETE", base + "/t/retention", "", 204, ""},
		{"GET", base + "/t/retention", "", 204, ""},
	})
	if eff := p.Policies(); eff.RetentionTime != broker.DefaultPolicies().RetentionTime {
		t.Fatalf("policies after removing the override %+v", eff)
	}
}

// TestTopicPermissions: grants on one topic live in its namespace's
// policies, may precede the topic, merge with the namespace's on GET, and
// a partition's name stands for its partitioned topic.
func TestTopicPermissions(t *testing.T) {
	srv, _ := newTestServer(t)
	base := "/admin/v2/persistent/public/default/orders/permissions"
	runCalls(t, srv, []call{
		{"GET", base, "", 200, `{}`},
		{"POST", base + "/alice", `["produce","consume","produce"]`, 204, ""}, // no topic yet
		{"POST", base + "/bob", `["functions"]`, 400, ""},
		{"POST", "/admin/v2/namespaces/public/default/permissions/carol", `["consume"]`, 204, ""},
		{"POST", "/admin/v2/persistent/public/default/orders-partition-1/permissions/carol", `["produce"]`, 204, ""},
		{"GET", base, "", 200, `{"alice":["consume","produce"],"carol":["consume","produce"]}`},
		{"GET", "/admin/v2/persistent/public/default/orders-partition-0/permissions", "", 200, `{"alice":["consume","produce"],"carol":["consume","produce"]}`},
		{"GET", "/admin/v2/persistent/public/default/other/permissions", "", 200, `{"carol":["consume"]}`},
		{"GET", "/admin/v2/non-persistent/public/default/orders/permissions", "", 200, `{"carol":["consume"]}`},
		{"GET", "/admin/v2/namespaces/public/default", "", 200, `{"replication_clusters":["standalone"],"auth_policies":{` +
			`"namespace_auth":{"carol":["consume"]},` +
			`"destination_auth":{"persistent://public/default/orders":{"alice":["consume","produce"],"carol":["produce"]}},` +
			`"subscription_auth_roles":{}}}`},
		{"DELETE", base + "/carol", "", 204, ""},
		{"DELETE", base + "/carol", "", 412, ""}, // not set on the topic (the namespace's stays)
		{"GET", base, "", 200, `{"alice":["consume","produce"],"carol":["consume"]}`},
		{"DELETE", base + "/alice", "", 204, ""},
		{"GET", "/admin/v2/namespaces/public/default", "", 200, `{"replication_clusters":["standalone"],"auth_policies":{` +
			`"namespace_auth":{"carol":["consume"]},"destination_auth":{},"subscription_auth_roles":{}}}`},
		{"POST", "/admin/v2/persistent/public/nope/orders/permissions/alice", `["produce"]`, 404, ""},
		{"POST", "/admin/v2/persistent/public/default/bad%20name/permissions/alice", `["produce"]`, 412, ""},
	})
}
