package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
)

// TestEtcdMetadataOutage runs a broker with its metadata in a real etcd:
// the data dir holds ledgers only; when etcd stops, health answers 503 with
// the reason and kopernik_metadata_store_up drops to 0; when etcd is back
// (same dir and ports) health recovers by itself, produce and consume
// resume, and every acknowledged record is there, also after the broker
// itself restarts on the same data dir and etcd.
func TestEtcdMetadataOutage(t *testing.T) {
	etcd := etcdtest.Start(t)
	dataDir := t.TempDir()
	s := startStorageServer(t, dataDir, nil, "metadata-store-url", etcd.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "etcd-outage"
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	produce := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			v := fmt.Sprintf("%s-%d", prefix, i)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
			acked[v] = true
		}
	}
	produce("before", 50)
	if _, err := os.Stat(filepath.Join(dataDir, "metadata.db")); !os.IsNotExist(err) {
		t.Fatalf("metadata.db in the data dir with etcd selected: %v", err)
	}
	if code, body := httpGet(t, s, "/admin/v2/brokers/health"); code != 200 {
		t.Fatalf("health with etcd up: %d %s", code, body)
	}
	if v := metricValue(t, s, "kopernik_metadata_store_up"); v != "1" {
		t.Fatalf("kopernik_metadata_store_up %q with etcd up", v)
	}

	etcd.Stop()
	code, body := httpGet(t, s, "/admin/v2/brokers/health")
	if code != 503 || !strings.Contains(body, "metadata failed: metadata: store unavailable") {
		t.Fatalf("health with etcd down: %d %q", code, body)
	}
	if v := metricValue(t, s, "kopernik_metadata_store_up"); v != "0" {
		t.Fatalf("kopernik_metadata_store_up %q with etcd down", v)
	}
	// Records produced meanwhile to the loaded partitions may be
	// acknowledged (their ledgers are local); whatever is must survive.
	during := 0
	for i := range 20 {
		v := fmt.Sprintf("during-%d", i)
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		if cl.ProduceSync(pctx, &kgo.Record{Value: []byte(v)}).FirstErr() == nil {
			acked[v] = true
			during++
		}
		pcancel()
	}
	t.Logf("%d of 20 records acknowledged while etcd was down", during)

	if err := etcd.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "health after etcd restart", func() bool {
		code, _ := httpGet(t, s, "/admin/v2/brokers/health")
		return code == 200
	})
	produce("after", 50)
	checkReadBack(ctx, t, s.Addr("kafka").String(), topic, acked)

	// The topic and its offsets are in etcd, the records in the data dir:
	// a restarted broker on both finds everything.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = startStorageServer(t, dataDir, nil, "metadata-store-url", etcd.URL())
	checkReadBack(ctx, t, s.Addr("kafka").String(), topic, acked)
}

// TestACLsAcrossBrokers: two brokers share one etcd. Kafka CreateAcls sent
// to one and admin API grants sent to the other race on the same
// namespace's policies; none is lost (compare-and-swap), and the broker
// that made none of the Kafka changes enforces them (its grant cache
// follows the store watch): a Kafka producer authorized only by an ACL
// created through the first broker produces through the second.
func TestACLsAcrossBrokers(t *testing.T) {
	etcd := etcdtest.Start(t)
	extra := map[string]string{"authorization-enabled": "true", "superuser-roles": "admin", "protocols": "kafka",
		"metadata-store-url": etcd.URL()}
	a, b := startAuthServer(t, extra), startAuthServer(t, extra)
	aclSetup(t, a)
	ctx := aclCtx(t)
	const ns = "tenant-a/ns"
	if aclAllowed(t, b, "u0", ns, auth.NeedProduce) { // cached on b now
		t.Fatal("u0 may produce before any grant")
	}
	adm := kadm.NewClient(aclKgo(t, a, "public/default", "admin"))
	const n = 8
	errc := make(chan error, 2*n)
	for i := range n {
		go func() {
			res, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow(fmt.Sprintf("User:u%d", i)).Topics(ns+"/").
				ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite))
			if err == nil && len(res) == 1 && res[0].Err != nil {
				err = res[0].Err
			}
			errc <- err
		}()
		go func() {
			code, body := aclREST(t, b, "POST", fmt.Sprintf("/admin/v2/namespaces/%s/permissions/r%d", ns, i), `["consume"]`)
			if code/100 != 2 {
				errc <- fmt.Errorf("grant r%d: %d %s", i, code, body)
				return
			}
			errc <- nil
		}()
	}
	for range 2 * n {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*Server{a, b} {
		perms := aclPermissions(t, s, ns)
		for i := range n {
			if !slices.Equal(perms[fmt.Sprintf("u%d", i)], []string{"produce"}) || !slices.Equal(perms[fmt.Sprintf("r%d", i)], []string{"consume"}) {
				t.Fatalf("permissions lost: %v", perms)
			}
		}
	}
	// An ACL created through a alone, after b cached a refusal for its
	// user, is enforced by b within less than the grant cache's lifetime:
	// only b's watch can have dropped the cached decision.
	if aclAllowed(t, b, "late", ns, auth.NeedProduce) {
		t.Fatal("late may produce before its grant")
	}
	if res, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:late").Topics(ns+"/").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite)); err != nil || res[0].Err != nil {
		t.Fatalf("create ACL for late: %v %v", res, err)
	}
	waitUntil(t, auth.DefaultGrantCacheTTL-time.Second, "b enforcing the ACL created through a", func() bool {
		return aclAllowed(t, b, "late", ns, auth.NeedProduce)
	})
	late := aclKgo(t, b, ns, "late", kgo.AllowAutoTopicCreation())
	if err := late.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("via b")}).FirstErr(); err != nil {
		t.Fatalf("late produces through b: %v", err)
	}
}
