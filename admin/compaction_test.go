package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

func TestCompactionAPI(t *testing.T) {
	ctx := context.Background()
	store := metadata.NewMemory()
	f, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	c, err := compact.New(compact.Options{Dir: "/compacted", FS: segment.NewMemFS(), Store: store, Codec: convert.CompactionCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(ctx, broker.Options{Store: store, Ledgers: f, RetentionInterval: -1, Compactor: c, CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(b, Options{BrokerURL: "pulsar://broker:6650", HTTPURL: "http://broker:8080"}))
	defer func() { srv.Close(); b.Close(); c.Close(); f.Close(); store.Close() }()

	const topic = "/admin/v2/persistent/public/default/table"
	runCalls(t, srv, []call{
		{"PUT", topic, "", http.StatusNoContent, ""},
		{"GET", topic + "/compaction", "", http.StatusOK, `{"status":"NOT_RUN","lastError":""}`},
		{"GET", "/admin/v2/namespaces/public/default/compactionThreshold", "", http.StatusOK, `0`},
		{"POST", "/admin/v2/namespaces/public/default/compactionThreshold", `1048576`, http.StatusNoContent, ""},
		{"GET", "/admin/v2/namespaces/public/default/compactionThreshold", "", http.StatusOK, `1048576`},
		{"GET", topic + "/compactionThreshold", "", http.StatusNoContent, ""},
		{"POST", topic + "/compactionThreshold", `4096`, http.StatusNoContent, ""},
		{"GET", topic + "/compactionThreshold", "", http.StatusOK, `4096`},
		{"POST", topic + "/compactionThreshold", `-1`, http.StatusBadRequest, ""},
		{"PUT", topic + "/compaction", "", http.StatusNoContent, ""},
	})
	name, _ := broker.ParseTopicName("table", "public", "default")
	md, err := b.GetTopic(ctx, name)
	if err != nil || md.Effective.CompactionThreshold != 4096 || !md.Effective.Compacting() {
		t.Fatalf("topic policies: %+v %v", md.Effective, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, body := do(t, srv, "GET", topic+"/compaction", "")
		if status == http.StatusOK && jsonEqual(t, body, `{"status":"SUCCESS","lastError":""}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("compaction status %d %s", status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var stats struct {
		Compaction struct {
			LastCompactionSucceedTimestamp int64 `json:"lastCompactionSucceedTimestamp"`
		} `json:"compaction"`
	}
	getJSON(t, srv, topic+"/stats", &stats)
	if stats.Compaction.LastCompactionSucceedTimestamp == 0 {
		t.Fatalf("stats: %+v", stats)
	}
	runCalls(t, srv, []call{
		{"DELETE", topic + "/compactionThreshold", "", http.StatusNoContent, ""},
		{"GET", topic + "/compactionThreshold", "", http.StatusNoContent, ""},
		{"DELETE", "/admin/v2/namespaces/public/default/compactionThreshold", "", http.StatusNoContent, ""},
		{"GET", "/admin/v2/namespaces/public/default/compactionThreshold", "", http.StatusOK, `0`},
		{"PUT", "/admin/v2/persistent/public/default/nosuch/compaction", "", http.StatusNotFound, ""},
	})
}
