package admin

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

func TestBacklogQuota(t *testing.T) {
	srv, b := newTestServer(t)
	client, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ns := "public/default"
	if err := client.Namespaces().SetBacklogQuota(ns, utils.NewBacklogQuota(2048, 0, utils.ProducerRequestHold), utils.DestinationStorage); err != nil {
		t.Fatal(err)
	}
	m, err := client.Namespaces().GetBacklogQuotaMap(ns)
	if err != nil {
		t.Fatal(err)
	}
	if q := m[utils.DestinationStorage]; q.LimitSize != 2048 || q.Policy != utils.ProducerRequestHold {
		t.Fatalf("quota map %+v", m)
	}
	p, _ := b.NamespacePolicies(context.Background(), ns)
	if q := p.BacklogQuota; q == nil || q.LimitBytes != 2048 || q.Policy != "producer_request_hold" {
		t.Fatalf("policies %+v", p)
	}
	// pulsar-client-go's tests send the deprecated "limit" as a string.
	resp, err := http.Post(srv.URL+"/admin/v2/namespaces/public/default/backlogQuota", "application/json",
		strings.NewReader(`{"limit": "10240", "policy": "producer_request_hold"}`))
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("post: %v %v", resp, err)
	}
	resp.Body.Close()
	p, _ = b.NamespacePolicies(context.Background(), ns)
	if q := p.BacklogQuota; q == nil || q.LimitBytes != 10240 {
		t.Fatalf("policies %+v", p)
	}
	if err := client.Namespaces().RemoveBacklogQuota(ns); err != nil {
		t.Fatal(err)
	}
	if m, err := client.Namespaces().GetBacklogQuotaMap(ns); err != nil || len(m) != 0 {
		t.Fatalf("after remove: %v %v", m, err)
	}
}
