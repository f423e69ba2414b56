package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"

	"github.com/kopernik-io/kopernik/broker"
)

// TestPulsarAdminClient drives the API with pulsar-client-go's own admin
// client: the judge of paths, bodies and JSON shapes.
func TestPulsarAdminClient(t *testing.T) {
	srv, b := newTestServer(t)
	ctx := context.Background()
	client, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wantStatus := func(what string, err error, status int) {
		t.Helper()
		var re rest.Error
		if !errors.As(err, &re) || re.Code != status {
			t.Fatalf("%s: got %v, want HTTP %d", what, err, status)
		}
		if re.Reason == "" {
			t.Fatalf("%s: no reason in %+v", what, re)
		}
	}

	// Tenants.
	must("create tenant", client.Tenants().Create(utils.TenantData{Name: "acme", AdminRoles: []string{"root"}, AllowedClusters: []string{"standalone"}}))
	wantStatus("create tenant again", client.Tenants().Create(utils.TenantData{Name: "acme"}), http.StatusConflict)
	tenants, err := client.Tenants().List()
	must("list tenants", err)
	if !slices.Equal(tenants, []string{"acme", "public"}) {
		t.Fatalf("tenants %v", tenants)
	}
	td, err := client.Tenants().Get("acme")
	must("get tenant", err)
	if !slices.Equal(td.AdminRoles, []string{"root"}) || !slices.Equal(td.AllowedClusters, []string{"standalone"}) {
		t.Fatalf("tenant %+v", td)
	}
	must("update tenant", client.Tenants().Update(utils.TenantData{Name: "acme", AdminRoles: []string{"ops"}}))
	_, err = client.Tenants().Get("nope")
	wantStatus("get missing tenant", err, http.StatusNotFound)

	// Namespaces and retention.
	must("create namespace", client.Namespaces().CreateNamespace("acme/app"))
	wantStatus("create namespace again", client.Namespaces().CreateNamespace("acme/app"), http.StatusConflict)
	nss, err := client.Namespaces().GetNamespaces("acme")
	must("list namespaces", err)
	if !slices.Equal(nss, []string{"acme/app"}) {
		t.Fatalf("namespaces %v", nss)
	}
	ret, err := client.Namespaces().GetRetention("acme/app")
	must("get unset retention", err)
	if ret != nil {
		t.Fatalf("unset retention %+v", ret)
	}
	must("set retention", client.Namespaces().SetRetention("acme/app", utils.NewRetentionPolicies(120, 512)))
	ret, err = client.Namespaces().GetRetention("acme/app")
	must("get retention", err)
	if ret == nil || ret.RetentionTimeInMinutes != 120 || ret.RetentionSizeInMB != 512 {
		t.Fatalf("retention %+v", ret)
	}

	// Topics.
	plain, _ := utils.GetTopicName("persistent://acme/app/plain")
	parted, _ := utils.GetTopicName("persistent://acme/app/parted")
	must("create topic", client.Topics().Create(*plain, 0))
	must("create partitioned topic", client.Topics().Create(*parted, 3))
	wantStatus("create partitioned again", client.Topics().Create(*parted, 3), http.StatusConflict)
	md, err := client.Topics().GetMetadata(*parted)
	must("metadata", err)
	if md.Partitions != 3 {
		t.Fatalf("partitions %d", md.Partitions)
	}
	must("update partitions", client.Topics().Update(*parted, 5))
	md, _ = client.Topics().GetMetadata(*parted)
	if md.Partitions != 5 {
		t.Fatalf("partitions after update %d", md.Partitions)
	}
	ns, _ := utils.GetNamespaceName("acme/app")
	partitionedList, nonPartitionedList, err := client.Topics().List(*ns)
	must("list topics", err)
	if !slices.Equal(partitionedList, []string{"persistent://acme/app/parted"}) || len(nonPartitionedList) != 6 {
		t.Fatalf("topic lists %v / %v", partitionedList, nonPartitionedList)
	}
	lookup, err := client.Topics().Lookup(*plain)
	must("lookup", err)
	if lookup.BrokerURL != "pulsar://broker:6650" || lookup.HTTPURL != "http://broker:8080" {
		t.Fatalf("lookup %+v", lookup)
	}

	// Subscriptions and stats.
	must("create subscription", client.Subscriptions().Create(*plain, "sub", utils.Earliest))
	wantStatus("create subscription again", client.Subscriptions().Create(*plain, "sub", utils.Latest), http.StatusConflict)
	must("create subscription on partitioned", client.Subscriptions().Create(*parted, "group", utils.Latest))
	subs, err := client.Subscriptions().List(*plain)
	must("list subscriptions", err)
	if !slices.Equal(subs, []string{"sub"}) {
		t.Fatalf("subscriptions %v", subs)
	}
	name, _ := broker.ParseTopicName("acme/app/plain", "", "")
	p, err := b.OpenPartition(ctx, name, false)
	must("open", err)
	produce(t, p, 1000, 2000, 3000)
	stats, err := client.Topics().GetStats(*plain)
	must("stats", err)
	if stats.MsgCounterIn != 3 || stats.StorageSize < 30 || stats.Subscriptions["sub"].MsgBacklog != 3 {
		t.Fatalf("stats %+v", stats)
	}
	internal, err := client.Topics().GetInternalStats(*plain)
	must("internal stats", err)
	if internal.NumberOfEntries != 3 || len(internal.Ledgers) == 0 || internal.Cursors["sub"].MarkDeletePosition == "" {
		t.Fatalf("internal stats %+v", internal)
	}
	mid, err := client.Topics().GetMessageID(*plain, 1500)
	must("message id by time", err)
	entries, err := p.ReadFromIndex(ctx, 1, 1, 1<<20)
	must("read", err)
	if mid.LedgerID != entries[0].Position.LedgerID || mid.EntryID != entries[0].Position.EntryID {
		t.Fatalf("message id at 1500: %+v, want %v", mid, entries[0].Position)
	}
	_, err = client.Topics().GetMessageID(*plain, 9000)
	wantStatus("message id after the end", err, http.StatusNotFound)
	must("reset by time", client.Subscriptions().ResetCursorToTimestamp(*plain, "sub", 2500))
	stats, _ = client.Topics().GetStats(*plain)
	if got := stats.Subscriptions["sub"].MsgBacklog; got != 1 {
		t.Fatalf("backlog after reset by time %d", got)
	}
	must("reset to earliest", client.Subscriptions().ResetCursorToMessageID(*plain, "sub", utils.Earliest))
	stats, _ = client.Topics().GetStats(*plain)
	if got := stats.Subscriptions["sub"].MsgBacklog; got != 3 {
		t.Fatalf("backlog after reset to earliest %d", got)
	}
	must("clear backlog", client.Subscriptions().ClearBacklog(*plain, "sub"))
	pstats, err := client.Topics().GetPartitionedStats(*parted, true)
	must("partitioned stats", err)
	if pstats.Metadata.Partitions != 5 || len(pstats.Partitions) != 5 {
		t.Fatalf("partitioned stats %+v", pstats)
	}
	if _, ok := pstats.Subscriptions["group"]; !ok {
		t.Fatalf("partitioned stats lack the subscription: %+v", pstats.Subscriptions)
	}
	must("delete subscription", client.Subscriptions().Delete(*plain, "sub"))
	wantStatus("delete missing subscription", client.Subscriptions().Delete(*plain, "sub"), http.StatusNotFound)

	// Deletion order: namespace and tenant refuse while not empty.
	wantStatus("delete non-empty namespace", client.Namespaces().DeleteNamespace("acme/app"), http.StatusConflict)
	must("delete partitioned topic", client.Topics().Delete(*parted, true, false))
	must("delete topic", client.Topics().Delete(*plain, false, true))
	wantStatus("delete non-empty tenant", client.Tenants().Delete("acme"), http.StatusConflict)
	must("delete namespace", client.Namespaces().DeleteNamespace("acme/app"))
	must("delete tenant", client.Tenants().Delete("acme"))
}
