package kafka

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestErrorPaths(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "errs", 2)
	produceCode := func(req *kmsg.ProduceRequest) int16 {
		return c.do(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	ok := makeBatch(-1, -1, -1, 1000, "v")

	if code := produceCode(produceReq("nope", 0, ok)); code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown topic: %d", code)
	}
	if code := produceCode(produceReq("errs", 5, ok)); code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown partition: %d", code)
	}
	txn := produceReq("errs", 0, ok)
	txn.TransactionID = kmsg.StringPtr("tx")
	if code := produceCode(txn); code != kerr.InvalidRecord.Code {
		t.Errorf("transactional id with a non-transactional batch: %d", code)
	}
	txnBatch := append([]byte(nil), ok...)
	binary.BigEndian.PutUint16(txnBatch[21:], attrTransactional)
	binary.BigEndian.PutUint32(txnBatch[17:], crc32.Checksum(txnBatch[21:], castagnoli))
	if code := produceCode(produceReq("errs", 0, txnBatch)); code != kerr.InvalidRecord.Code {
		t.Errorf("transactional batch without a producer id: %d", code)
	}
	badAcks := produceReq("errs", 0, ok)
	badAcks.Acks = 2
	if code := produceCode(badAcks); code != kerr.InvalidRequiredAcks.Code {
		t.Errorf("acks 2: %d", code)
	}
	v1 := append([]byte(nil), ok...)
	v1[16] = 1
	if code := produceCode(produceReq("errs", 0, v1)); code != kerr.UnsupportedForMessageFormat.Code {
		t.Errorf("magic 1: %d", code)
	}
	two := append(append([]byte(nil), ok...), ok...)
	if code := produceCode(produceReq("errs", 0, two)); code != kerr.CorruptMessage.Code {
		t.Errorf("two batches: %d", code)
	}
	ctl := append([]byte(nil), ok...)
	binary.BigEndian.PutUint16(ctl[21:], attrControl)
	binary.BigEndian.PutUint32(ctl[17:], crc32.Checksum(ctl[21:], castagnoli))
	if code := produceCode(produceReq("errs", 0, ctl)); code != kerr.InvalidRecord.Code {
		t.Errorf("control batch: %d", code)
	}

	// ListOffsets and Fetch on unknown partitions.
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 6
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "errs"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition, lp.Timestamp = 9, -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	if code := c.do(lo).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("list offsets: %d", code)
	}
	f := fetchReq(0, -1, 1<<20, map[int32]int64{0: 0})
	f.Topics[0].Topic = "nope"
	if code := c.do(f).(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("fetch: %d", code)
	}

	// DeleteRecords beyond the high watermark.
	dr := kmsg.NewPtrDeleteRecordsRequest()
	dr.Version = 2
	drt := kmsg.NewDeleteRecordsRequestTopic()
	drt.Topic = "errs"
	drp := kmsg.NewDeleteRecordsRequestTopicPartition()
	drp.Offset = 100
	drt.Partitions = append(drt.Partitions, drp)
	dr.Topics = append(dr.Topics, drt)
	if code := c.do(dr).(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.OffsetOutOfRange.Code {
		t.Errorf("delete records: %d", code)
	}

	// OffsetForLeaderEpoch: epoch 0 ends at the high watermark.
	produceCode(produceReq("errs", 1, ok))
	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	oe.Version = 4
	oet := kmsg.NewOffsetForLeaderEpochRequestTopic()
	oet.Topic = "errs"
	oep := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	oep.Partition, oep.CurrentLeaderEpoch = 1, 0
	oet.Partitions = append(oet.Partitions, oep)
	oe.Topics = append(oe.Topics, oet)
	if p := c.do(oe).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.EndOffset != 1 || p.LeaderEpoch != 0 {
		t.Errorf("offset for leader epoch: %+v", p)
	}

	// DescribeCluster.
	dc := c.do(kmsg.NewPtrDescribeClusterRequest()).(*kmsg.DescribeClusterResponse)
	if dc.ClusterID != s.broker.ClusterID() || len(dc.Brokers) != 1 {
		t.Errorf("describe cluster: %+v", dc)
	}

	// DeleteTopics by topic id.
	m := kmsg.NewPtrMetadataRequest()
	m.Version = 11
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("errs")
	m.Topics = append(m.Topics, mt)
	id := c.do(m).(*kmsg.MetadataResponse).Topics[0].TopicID
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.Version = 6
	dtt := kmsg.NewDeleteTopicsRequestTopic()
	dtt.TopicID = id
	dt.Topics = append(dt.Topics, dtt)
	if r := c.do(dt).(*kmsg.DeleteTopicsResponse).Topics[0]; r.ErrorCode != 0 || r.Topic == nil || *r.Topic != "errs" {
		t.Errorf("delete by id: %+v", r)
	}
	if r := c.do(dt).(*kmsg.DeleteTopicsResponse).Topics[0]; r.ErrorCode != kerr.UnknownTopicID.Code {
		t.Errorf("delete by id again: %+v", r)
	}

	// acks=0 and an error: no response, the connection closes.
	noAck := produceReq("nope", 0, ok)
	noAck.Acks = 0
	c.send(noAck)
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("acks=0 error: %v", err)
	}
}
