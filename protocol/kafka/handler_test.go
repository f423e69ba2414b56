package kafka

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/protocol"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{Tenant: "a/b", Namespace: "", AdvertisedAddr: "nohost", DefaultPartitions: 0, MaxRequestBytes: 10, IdleTimeout: 0, NodeID: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	// Every problem is listed at once.
	for _, want := range []string{"tenant", "namespace", "advertised-addr", "default-partitions", "max-request-bytes", "idle-timeout", "node-id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestAdvertisedAddr(t *testing.T) {
	s := startServer(t, func(c *Config) { c.AdvertisedAddr = "kafka.example:19092"; c.NodeID = 7 })
	c := dialRaw(t, s.addr)
	m := kmsg.NewPtrMetadataRequest()
	m.Version = 11
	r := c.do(m).(*kmsg.MetadataResponse)
	if len(r.Brokers) != 1 || r.Brokers[0].Host != "kafka.example" || r.Brokers[0].Port != 19092 || r.Brokers[0].NodeID != 7 || r.ControllerID != 7 {
		t.Fatalf("brokers: %+v controller %d", r.Brokers, r.ControllerID)
	}
}

func TestIdleConnectionReaped(t *testing.T) {
	s := startServer(t, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	c := dialRaw(t, s.addr)
	start := time.Now()
	if _, err := c.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	if el := time.Since(start); el < 150*time.Millisecond || el > 5*time.Second {
		t.Fatalf("closed after %s", el)
	}
}

// Close ends long polls at once and waits for the connections.
func TestCloseDuringLongPoll(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "lp", 1)
	f := fetchReq(0, -1, 1<<20, map[int32]int64{0: 0})
	f.Topics[0].Topic = "lp"
	f.MaxWaitMillis, f.MinBytes = 30_000, 1
	corr := c.send(f)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("close took %s", el)
	}
	// The in-flight fetch was answered before the connection closed.
	c.recv(f, corr)
	if _, err := c.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after close: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, func(c *Config) {})
	// A second handler on the same broker, exporting to reg.
	h, err := New(protocol.Env{Broker: s.broker, Logger: testLogger(), Metrics: reg}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.Serve(context.Background(), ln)
	defer h.Close(context.Background())
	c := dialRaw(t, ln.Addr().String())
	avr := kmsg.NewPtrApiVersionsRequest()
	avr.Version = 3
	c.do(avr)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got float64
	for _, mf := range mfs {
		if mf.GetName() != "kopernik_kafka_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "api" && l.GetValue() == "ApiVersions" {
					got = m.GetCounter().GetValue()
				}
			}
		}
	}
	if got != 1 {
		t.Fatalf("ApiVersions requests = %v", got)
	}
}

// A connection waiting on its own long poll is not idle.
func TestLongPollLongerThanIdleTimeout(t *testing.T) {
	s := startServer(t, func(c *Config) { c.IdleTimeout = 100 * time.Millisecond })
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "slow", 1)
	f := fetchReq(0, -1, 1<<20, map[int32]int64{0: 0})
	f.Topics[0].Topic = "slow"
	f.MaxWaitMillis, f.MinBytes = 400, 1
	start := time.Now()
	r := c.do(f).(*kmsg.FetchResponse)
	if el := time.Since(start); el < 350*time.Millisecond || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("after %s: %+v", el, r)
	}
}
