package kafka

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// rawConn speaks the wire protocol directly, for what clients never send.
type rawConn struct {
	t    testing.TB
	nc   net.Conn
	corr int32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, nc: nc}
}

// send writes req and returns its correlation id.
func (c *rawConn) send(req kmsg.Request) int32 {
	c.t.Helper()
	c.corr++
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))
	if _, err := c.nc.Write(f.AppendRequest(nil, req, c.corr)); err != nil {
		c.t.Fatal(err)
	}
	return c.corr
}

// recv reads the response to req (sent with correlation id corr).
func (c *rawConn) recv(req kmsg.Request, corr int32) kmsg.Response {
	c.t.Helper()
	body, err := readFrame(c.nc, 1<<30, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		c.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != apiVersionsKey {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatal(err)
	}
	return resp
}

func (c *rawConn) do(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	return c.recv(req, c.send(req))
}

// makeBatch encodes an uncompressed RecordBatch v2.
func makeBatch(pid int64, epoch int16, seq int32, baseTs int64, values ...string) []byte {
	var recs []byte
	for i, v := range values {
		var r []byte
		r = append(r, 0)                        // attributes
		r = binary.AppendVarint(r, int64(i)*10) // timestamp delta
		r = binary.AppendVarint(r, int64(i))    // offset delta
		r = binary.AppendVarint(r, -1)          // null key
		r = binary.AppendVarint(r, int64(len(v)))
		r = append(r, v...)
		r = binary.AppendVarint(r, 0) // headers
		recs = binary.AppendVarint(recs, int64(len(r)))
		recs = append(recs, r...)
	}
	b := make([]byte, 0, batchHeaderSize+len(recs))
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(batchHeaderSize-12+len(recs)))
	b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	b = append(b, 2, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(values)-1))
	b = binary.BigEndian.AppendUint64(b, uint64(baseTs))
	b = binary.BigEndian.AppendUint64(b, uint64(baseTs+int64(len(values)-1)*10))
	b = binary.BigEndian.AppendUint64(b, uint64(pid))
	b = binary.BigEndian.AppendUint16(b, uint16(epoch))
	b = binary.BigEndian.AppendUint32(b, uint32(seq))
	b = binary.BigEndian.AppendUint32(b, uint32(len(values)))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func produceReq(topic string, partition int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func createTopicRaw(t *testing.T, c *rawConn, topic string, partitions int32) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 7
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	req.Topics = append(req.Topics, rt)
	resp := c.do(req).(*kmsg.CreateTopicsResponse)
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatal(err)
	}
}

func TestIdempotentRetryNoDuplicate(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "idem", 1)

	ipr := kmsg.NewPtrInitProducerIDRequest()
	ipr.Version = 4
	pr := c.do(ipr).(*kmsg.InitProducerIDResponse)
	pr2 := c.do(ipr).(*kmsg.InitProducerIDResponse)
	if pr.ErrorCode != 0 || pr.ProducerID <= 0 || pr2.ProducerID == pr.ProducerID {
		t.Fatalf("init producer id: %+v %+v", pr, pr2)
	}
	pid := pr.ProducerID
	base := func(r kmsg.Response) (int64, int16) {
		p := r.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
		return p.BaseOffset, p.ErrorCode
	}
	b0 := makeBatch(pid, 0, 0, time.Now().UnixMilli(), "a", "b", "c")
	b1 := makeBatch(pid, 0, 3, time.Now().UnixMilli(), "d", "e")
	if off, code := base(c.do(produceReq("idem", 0, b0))); off != 0 || code != 0 {
		t.Fatalf("first: %d %d", off, code)
	}
	if off, code := base(c.do(produceReq("idem", 0, b1))); off != 3 || code != 0 {
		t.Fatalf("second: %d %d", off, code)
	}
	// The retry of the first batch (a lost response) is acknowledged with
	// its original offset and not appended again.
	if off, code := base(c.do(produceReq("idem", 0, b0))); off != 0 || code != 0 {
		t.Fatalf("retry: %d %d", off, code)
	}
	// A gap in sequences is refused.
	gap := makeBatch(pid, 0, 9, time.Now().UnixMilli(), "x")
	if _, code := base(c.do(produceReq("idem", 0, gap))); code != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: code %d", code)
	}
	// A corrupted batch is refused.
	bad := bytes.Clone(b1)
	bad[len(bad)-1] ^= 0xff
	if _, code := base(c.do(produceReq("idem", 0, bad))); code != kerr.CorruptMessage.Code {
		t.Fatalf("bad crc: code %d", code)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 6
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "idem"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	if hw := c.do(lo).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].Offset; hw != 5 {
		t.Fatalf("high watermark %d, want 5 (no duplicate)", hw)
	}
}

func TestMalformedFrameClosesOnlyThatConnection(t *testing.T) {
	s := startServer(t)
	good := dialRaw(t, s.addr)
	avr := kmsg.NewPtrApiVersionsRequest()
	avr.Version = 3
	if r := good.do(avr).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 || len(r.ApiKeys) == 0 {
		t.Fatalf("api versions: %+v", r)
	}
	bad := [][]byte{
		{0x7f, 0xff, 0xff, 0xff},                       // 2 GiB frame: refused before allocation
		{0xff, 0xff, 0xff, 0xff},                       // negative size
		{0, 0, 0, 12, 0, 3, 0, 9, 0, 0, 0, 1, 0},       // truncated
		{0, 0, 0, 10, 0x7f, 0, 0, 0, 0, 0, 0, 1, 0, 0}, // unknown api key
		append([]byte{0, 0, 0, 30, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0}, bytes.Repeat([]byte{0xff}, 20)...), // garbage produce body
	}
	for i, b := range bad {
		c := dialRaw(t, s.addr)
		c.nc.Write(b)
		if i == 2 {
			c.nc.(*net.TCPConn).CloseWrite()
		}
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.nc.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("frame %d: connection not closed: %d %v", i, n, err)
		}
	}
	// The good connection and new ones still work.
	if r := good.do(avr).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
		t.Fatalf("after: %+v", r)
	}
	cl := newKgo(t, s.addr, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("after"))
	if err := cl.ProduceSync(testCtx(t), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestApiVersionsUnknownVersion(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	avr := kmsg.NewPtrApiVersionsRequest()
	avr.Version = 3
	corr := c.send(&versionOverride{avr, 99})
	avr.Version = 0
	r := c.recv(avr, corr).(*kmsg.ApiVersionsResponse)
	if r.ErrorCode != kerr.UnsupportedVersion.Code || len(r.ApiKeys) == 0 {
		t.Fatalf("KIP-511 answer: %+v", r)
	}
}

// versionOverride sends r's body with another version number in the header.
type versionOverride struct {
	kmsg.Request
	v int16
}

func (o *versionOverride) GetVersion() int16 { return o.v }

func TestPipelinedResponsesInOrder(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "pipe", 1)
	// A long-polling fetch, then metadata: the metadata answer must wait.
	f := kmsg.NewPtrFetchRequest()
	f.Version = 12
	f.MaxWaitMillis, f.MinBytes = 300, 1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "pipe"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	f.Topics = append(f.Topics, ft)
	m := kmsg.NewPtrMetadataRequest()
	m.Version = 11
	start := time.Now()
	c1 := c.send(f)
	c2 := c.send(m)
	fr := c.recv(f, c1).(*kmsg.FetchResponse)
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("fetch returned after %s, before max wait", el)
	}
	if fr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("fetch: %+v", fr)
	}
	c.recv(m, c2)
}

// Many large pipelined frames: the read-ahead budget throttles the reader,
// every request is answered, in order.
func TestPipelinedLargeFrames(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "big", 1)
	batch := makeBatch(-1, -1, -1, 1000, string(bytes.Repeat([]byte{'x'}, 3<<20)))
	const n = 12 // 36 MiB in flight, over twice the budget
	req := produceReq("big", 0, batch)
	go func() {
		for range n {
			c.send(req) // correlation ids 2..n+1
		}
	}()
	for i := range n {
		r := c.recv(req, int32(i+2)).(*kmsg.ProduceResponse)
		if code := r.Topics[0].Partitions[0].ErrorCode; code != kerr.MessageTooLarge.Code {
			t.Fatalf("response %d: code %d", i, code)
		}
	}
}

func TestUnwrapSequence(t *testing.T) {
	const max = 1<<31 - 1
	for _, tc := range []struct {
		last int64
		base int32
		want int64
	}{
		{-1, 0, 0},
		{-1, 5, 5},
		{4, 5, 5},
		{9, 5, 5}, // a retry of an earlier batch
		{max, 0, max + 1},
		{max - 1, max, max},
		{max + 10, 11, max + 12},
		{max + 10, max - 3, max - 3}, // retry from before the wrap
		{3*seqCycle + 7, 8, 3*seqCycle + 8},
	} {
		if got := unwrapSequence(tc.last, tc.base); got != tc.want {
			t.Errorf("unwrap(%d, %d) = %d, want %d", tc.last, tc.base, got, tc.want)
		}
	}
}

// Sequences wrap from MaxInt32 to 0, mid-batch too.
func TestIdempotentSequenceWrap(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "wrap", 1)
	ipr := kmsg.NewPtrInitProducerIDRequest()
	ipr.Version = 4
	pid := c.do(ipr).(*kmsg.InitProducerIDResponse).ProducerID
	code := func(b []byte) int16 {
		return c.do(produceReq("wrap", 0, b)).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	const max = 1<<31 - 1
	b0 := makeBatch(pid, 0, max-2, 1000, "a", "b")    // max-2, max-1
	b1 := makeBatch(pid, 0, max, 1000, "c", "d", "e") // max, 0, 1
	b2 := makeBatch(pid, 0, 2, 1000, "f")
	for i, b := range [][]byte{b0, b1, b2, b1} {
		if got := code(b); got != 0 {
			t.Fatalf("batch %d: code %d", i, got)
		}
	}
	if got := code(makeBatch(pid, 0, 9, 1000, "g")); got != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap after wrap: code %d", got)
	}
}

// A topic created through Pulsar (non-partitioned) is one Kafka partition,
// and tenant/namespace/topic names reach other namespaces.
func TestPulsarTopicsAndQualifiedNames(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	if err := s.broker.CreateTenant(ctx, "acme", broker.TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	if err := s.broker.CreateNamespace(ctx, "acme/apps", broker.Policies{}); err != nil {
		t.Fatal(err)
	}
	plain, _ := broker.ParseTopicName("plain", "public", "default")
	if err := s.broker.CreateTopic(ctx, plain, 0, broker.Policies{}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, s.addr)
	m := kmsg.NewPtrMetadataRequest()
	m.Version = 11
	m.AllowAutoTopicCreation = true
	for _, n := range []string{"plain", "acme/apps/events"} {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(n)
		m.Topics = append(m.Topics, mt)
	}
	// The request that auto-creates acme/apps/events learns only that it
	// exists (LEADER_NOT_AVAILABLE, as Kafka); the next one lists it.
	if r := c.do(m).(*kmsg.MetadataResponse); r.Topics[1].ErrorCode != kerr.LeaderNotAvailable.Code {
		t.Fatalf("creating request: code %d", r.Topics[1].ErrorCode)
	}
	r := c.do(m).(*kmsg.MetadataResponse)
	for _, rt := range r.Topics {
		if rt.ErrorCode != 0 || rt.TopicID == ([16]byte{}) {
			t.Fatalf("%s: code %d id %x", *rt.Topic, rt.ErrorCode, rt.TopicID)
		}
	}
	if n := len(r.Topics[0].Partitions); n != 1 {
		t.Fatalf("non-partitioned topic has %d partitions", n)
	}
	if n := len(r.Topics[1].Partitions); n != 1 {
		t.Fatalf("auto-created topic has %d partitions", n)
	}
	for _, n := range []string{"plain", "acme/apps/events"} {
		pr := c.do(produceReq(n, 0, makeBatch(-1, -1, -1, 1000, "v"))).(*kmsg.ProduceResponse)
		if code := pr.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("%s: produce code %d", n, code)
		}
	}
	if _, err := s.broker.GetTopic(ctx, broker.TopicName{Domain: "persistent", Tenant: "acme", Namespace: "apps", Local: "events-partition-0"}); err != nil {
		t.Fatalf("qualified name did not land in acme/apps: %v", err)
	}
	part, err := s.broker.OpenPartition(ctx, plain, false)
	if err != nil || part.NextIndex() != 1 {
		t.Fatalf("plain topic: %v", err)
	}
	// A partition name is not a Kafka topic.
	m.Topics = m.Topics[:1]
	m.Topics[0].Topic = kmsg.StringPtr("acme/apps/events-partition-0")
	m.AllowAutoTopicCreation = false
	if r := c.do(m).(*kmsg.MetadataResponse); r.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("partition name: code %d", r.Topics[0].ErrorCode)
	}
}
