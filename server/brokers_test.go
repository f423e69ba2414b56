package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// httpDo sends method path and returns the status, a header and the body.
func httpDo(t *testing.T, s *Server, method, path, header string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.Addr("http").String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(header), string(b)
}

// TestPeekAndExamine: peek at a subscription's n-th unacknowledged entry
// and examine the n-th from either end, over Pulsar- and Kafka-produced
// entries (the Kafka ones converted as a Pulsar consumer reads them).
func TestPeekAndExamine(t *testing.T) {
	s := startStorageServer(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newTestClients(t, s, "persistent://public/default/peeked")
	c.sendPulsar(ctx, t, 3, "p")
	c.produceKafka(ctx, t, "peeked", 2, "k")
	// Subscription "g" has consumed the first entry (a Kafka commit).
	c.commit(ctx, t, "g", "peeked", 1)

	base := "/admin/v2/persistent/public/default/peeked"
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{base + "/subscription/g/position/1", 200, "p1"},
		{base + "/subscription/g/position/2", 200, "p2"},
		{base + "/subscription/g/position/4", 200, "k1"},
		{base + "/subscription/g/position/5", 404, ""},
		{base + "/subscription/g/position/0", 400, ""},
		{base + "/subscription/nope/position/1", 404, ""},
		{base + "/examinemessage", 200, "k1"},
		{base + "/examinemessage?initialPosition=latest&messagePosition=2", 200, "k0"},
		{base + "/examinemessage?initialPosition=earliest&messagePosition=1", 200, "p0"},
		{base + "/examinemessage?initialPosition=earliest&messagePosition=5", 200, "k1"},
		{base + "/examinemessage?initialPosition=earliest&messagePosition=6", 404, ""},
		{base + "/examinemessage?initialPosition=middle", 400, ""},
	} {
		status, id, body := httpDo(t, s, "GET", c.path, "X-Pulsar-Message-ID")
		if status != c.status || (c.want != "" && !strings.Contains(body, c.want)) || (status == 200 && id == "") {
			t.Errorf("GET %s: %d (id %q) %q, want %d with %q", c.path, status, id, body, c.status, c.want)
		}
	}
}

// TestBrokerEndpoints: health and readiness aggregate the checks (an
// unreachable metadata store fails them), version, active brokers, the
// broker's topic stats, and 405 for a wrong method.
func TestBrokerEndpoints(t *testing.T) {
	s := startStorageServer(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	newTestClients(t, s, "", kgo.AllowAutoTopicCreation()).produceKafka(ctx, t, "listed", 1, "v")

	for _, c := range []struct {
		method, path string
		status       int
		want         string
	}{
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/readyz", 200, "[+]started ok\n[+]storage ok\n[+]metadata ok\nready\n"},
		{"GET", "/admin/v2/brokers/health", 200, "ok"},
		{"GET", "/admin/v2/brokers/ready", 200, "ok"},
		{"GET", "/admin/v2/brokers/version", 200, ""},
		{"GET", "/admin/v2/brokers/standalone", 200, `["` + s.Addr("http").String() + `"]`},
		{"GET", "/admin/v2/brokers", 200, `["` + s.Addr("http").String() + `"]`},
		{"GET", "/admin/v2/brokers/other", 404, ""},
		{"GET", "/admin/v2/broker-stats/topics", 200, `"persistent://public/default/listed-partition-0":{"msgRateIn"`},
		{"PUT", "/admin/v2/brokers/health", 405, ""},
		{"DELETE", "/admin/v2/tenants", 405, ""},
		{"POST", "/admin/v2/nothing", 404, ""},
		{"POST", "/metrics", 405, ""},
	} {
		status, allow, body := httpDo(t, s, c.method, c.path, "Allow")
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %q, want %d with %q", c.method, c.path, status, body, c.status, c.want)
		}
		if status == 405 && allow != "GET" {
			t.Errorf("%s %s: Allow %q, want GET", c.method, c.path, allow)
		}
	}

	// The metadata store stops answering: not ready, not healthy; alive.
	s.storage.Store.Close()
	if status, _, body := httpDo(t, s, "GET", "/readyz", ""); status != 503 || !strings.Contains(body, "[-]metadata failed: metadata store unreachable") {
		t.Errorf("readyz without a store: %d %q", status, body)
	}
	if status, _, body := httpDo(t, s, "GET", "/admin/v2/brokers/health", ""); status != 503 || !strings.Contains(body, "metadata failed") {
		t.Errorf("health without a store: %d %q", status, body)
	}
	if status, _, _ := httpDo(t, s, "GET", "/healthz", ""); status != 200 {
		t.Errorf("healthz without a store: %d", status)
	}
}

// TestNonPersistentListedAndReasons: a non-persistent topic a Pulsar
// producer created is listed and has stats; a refusal's reason carries no
// internal package prefix.
func TestNonPersistentListedAndReasons(t *testing.T) {
	s := startStorageServer(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "non-persistent://public/default/np-listed"
	newTestClients(t, s, topic).sendPulsar(ctx, t, 2, "np")
	for _, c := range []struct{ path, want string }{
		{"/admin/v2/non-persistent/public/default", `["` + topic + `"]`},
		{"/admin/v2/namespaces/public/default/topics?mode=NON_PERSISTENT", `["` + topic + `"]`},
		{"/admin/v2/namespaces/public/default/topics?mode=ALL", topic},
		{"/admin/v2/non-persistent/public/default/np-listed/stats", `"msgInCounter":2`},
	} {
		if status, _, body := httpDo(t, s, "GET", c.path, ""); status != 200 || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d %s, want %s", c.path, status, body, c.want)
		}
	}
	if status, _, body := httpDo(t, s, "GET", "/admin/v2/persistent/public/default", ""); status != 200 || strings.Contains(body, "np-listed") {
		t.Errorf("persistent listing: %d %s", status, body)
	}
	status, _, body := httpDo(t, s, "PUT", "/admin/v2/namespaces/public/default", "")
	if status != 409 || strings.Contains(body, "broker:") || !strings.Contains(body, "already exists") {
		t.Errorf("existing namespace: %d %s, want 409 with a reason without package prefixes", status, body)
	}
}
