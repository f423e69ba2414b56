package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/kopernik-io/kopernik/broker"
)

// The HTTP lookup service of pulsar-client-go reads schemas here
// (TestHTTPLookupJsonSchema); its tests delete them here too.
func TestSchemas(t *testing.T) {
	srv, b := newTestServer(t)
	ctx := context.Background()
	name, _ := broker.ParseTopicName("public/default/sch", "", "")
	if err := b.CreateTopic(ctx, name, 2, broker.Policies{Extra: map[string]string{
		"pulsar.schema.0": `{"name":"s","type":2,"data":"eyJ0eXBlIjoicmVjb3JkIn0=","properties":{"k":"v"}}`,
		"pulsar.schema.1": `{"name":"s","type":4,"data":"e30="}`,
	}}); err != nil {
		t.Fatal(err)
	}
	get := func(path string, want int) getSchemaResponse {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		var out getSchemaResponse
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	if g := get("/admin/v2/schemas/public/default/sch/schema", 200); g.Version != 1 || g.Type != "AVRO" || g.Data != "{}" {
		t.Fatalf("latest %+v", g)
	}
	// A partition's schema is its topic's.
	if g := get("/admin/v2/schemas/public/default/sch-partition-1/schema/0", 200); g.Type != "JSON" || g.Data != `{"type":"record"}` || g.Properties["k"] != "v" {
		t.Fatalf("version 0 %+v", g)
	}
	get("/admin/v2/schemas/public/default/sch/schema/2", 404)
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/admin/v2/schemas/public/default/sch/schema", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("delete: %v %v", resp, err)
	}
	resp.Body.Close()
	get("/admin/v2/schemas/public/default/sch/schema", 404)
}

func TestTerminateTopic(t *testing.T) {
	srv, b := newTestServer(t)
	ctx := context.Background()
	name, _ := broker.ParseTopicName("public/default/term", "", "")
	if err := b.CreateTopic(ctx, name, 0, broker.Policies{}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(srv.URL+"/admin/v2/persistent/public/default/term/terminate", "application/json", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("terminate: %v %v", resp, err)
	}
	var id messageID
	_ = json.NewDecoder(resp.Body).Decode(&id)
	resp.Body.Close()
	if id.EntryID != -1 {
		t.Fatalf("last id of an empty topic %+v", id)
	}
	md, err := b.GetTopic(ctx, name)
	if err != nil || !md.Policies.Terminated {
		t.Fatalf("policies %+v %v", md.Policies, err)
	}
}
