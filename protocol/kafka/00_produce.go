package kafka

// Produce (key 0), versions 3-12 (record batch v2 only; v10's KIP-951
// leader hints are left out, there is one replica; v11 adds
// TRANSACTION_ABORTABLE to the codes a client may get; v13 names topics by
// id and is not served).
//
// Each partition's records must be exactly one RecordBatch v2 with a valid
// CRC-32C; it is stored byte for byte, unless the topic's compression.type
// (not "producer") asks for another codec: then its records are
// recompressed (recompress.go), as Kafka does; its record count becomes the
// entry's message count and its max timestamp the entry's event time. Idempotent batches (producer id >= 0)
// are deduplicated by the partition: a retry gets the original base offset, a
// gap gets OUT_OF_ORDER_SEQUENCE_NUMBER. A request with a transactional id
// carries transactional batches (and only those carry the transactional
// attribute: INVALID_RECORD otherwise); they are appended through the
// broker's transaction coordinator, which refuses a partition not added to
// the producer's ongoing transaction (INVALID_TXN_STATE) and an old epoch
// (INVALID_PRODUCER_EPOCH). Under transactions v2 (v12 and the handler's
// transaction-version 2) the request first adds its partitions to the
// producer's transaction (beginning one if none is open), as Kafka 4's
// produce path does; that costs a coordinator write only for a partition's
// first batch in a transaction.
// acks 0 sends no response (an error then closes the connection, as Kafka
// does, so the client refreshes metadata); acks 1 and -1 both answer once
// the batch is durable: there is one replica.
// Produce never creates topics: clients ask Metadata first.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
)

func init() { register(3, 12, handleProduce) }

func handleProduce(ctx context.Context, c *conn, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var reqErr error
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		reqErr = errInvalidRequiredAcks
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var wg sync.WaitGroup
	var failMu sync.Mutex
	var failed error
	fail := func(err error) {
		failMu.Lock()
		failed = err
		failMu.Unlock()
	}
	// Partitions append concurrently: their group commits overlap. Under
	// transactions v2 they first join the transaction, all in one call.
	type job struct {
		name    broker.TopicName
		records []byte
		topic   string
		sp      *kmsg.ProduceResponseTopicPartition
	}
	var jobs []job
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := &resp.Topics[i]
		*st = kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		var t *topicInfo
		terr := reqErr
		if terr == nil {
			t, terr = h.lookupTopic(ctx, rt.Topic, auth.NeedProduce, false)
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := &st.Partitions[j]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			if terr != nil {
				sp.ErrorCode, sp.ErrorMessage = errCode(terr), errMsg(terr)
				fail(terr)
				continue
			}
			name, ok := t.partition(rp.Partition)
			if !ok {
				err := errUnknownPartition(rt.Topic, rp.Partition)
				sp.ErrorCode, sp.ErrorMessage = errCode(err), errMsg(err)
				fail(err)
				continue
			}
			jobs = append(jobs, job{name: name, records: rp.Records, topic: rt.Topic, sp: sp})
		}
	}
	var joinErr error
	if req.TransactionID != nil && h.txnV2(req.Version, 12) && len(jobs) > 0 {
		names := make([]broker.TopicName, len(jobs))
		batches := make([][]byte, len(jobs))
		for i, j := range jobs {
			names[i], batches[i] = j.name, j.records
		}
		joinErr = h.joinTxn(ctx, *req.TransactionID, batches, names)
	}
	report := func(j job, err error) {
		// Base offset -1 with an error, as Kafka answers: franz-go takes a
		// DUPLICATE_SEQUENCE_NUMBER as success at the base offset given.
		j.sp.BaseOffset = -1
		j.sp.ErrorCode, j.sp.ErrorMessage = h.partitionErrCode(ctx, "produce", j.topic, j.sp.Partition, err), errMsg(err)
		fail(err)
		c.log.DebugContext(ctx, "kafka: produce failed", "topic", j.name.String(), "err", err)
	}
	type queued struct {
		job
		p    *broker.Partition
		pend *broker.PendingAppend
	}
	var waits []queued
	for _, j := range jobs {
		if joinErr == nil && req.TransactionID == nil {
			if p := h.svc.LoadedPartition(j.name); p != nil {
				// A loaded partition's append only queues (no I/O before
				// Wait), so it is made here: a goroutine per partition per
				// request was a third of a steady 10,000-partition round
				// (stack growth and teardown).
				pend, err := h.produceAsync(p, j.records)
				if err != nil {
					report(j, err)
					continue
				}
				waits = append(waits, queued{job: j, p: p, pend: pend})
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := joinErr
			if err == nil {
				err = h.produceOne(actx, j.name, j.records, req.TransactionID, j.sp)
			}
			if err != nil {
				report(j, err)
			} else if p := h.svc.LoadedPartition(j.name); p != nil {
				c.noteProduced(ctx, p, j.records) // producers.go
			}
		}()
	}
	for _, q := range waits {
		res, err := q.pend.Wait(actx)
		if err != nil {
			report(q.job, err)
			continue
		}
		q.sp.BaseOffset = res.Entry.FirstIndex
		q.sp.LogStartOffset = q.p.LogStart()
		c.noteProduced(ctx, q.p, q.records) // producers.go
	}
	wg.Wait()
	if req.Version < 8 {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorMessage = nil
			}
		}
	}
	if req.Acks == 0 {
		if failed != nil {
			return nil, failed
		}
		return nil, nil
	}
	return resp, nil
}

// joinTxn adds partitions to the transaction of the producer whose
// batches these are (transactions v2; the producer id and epoch of the
// first batch whose header parses: produceOne refuses batches that are
// bad or of another producer, as in v1).
func (h *Handler) joinTxn(ctx context.Context, txnID string, batches [][]byte, partitions []broker.TopicName) error {
	i := slices.IndexFunc(batches, func(b []byte) bool { bh, err := parseBatchHeader(b); return err == nil && bh.producerID >= 0 })
	if i < 0 {
		return nil
	}
	bh, _ := parseBatchHeader(batches[i])
	co, err := h.txns(ctx)
	if err != nil {
		return err
	}
	return co.JoinPartitions(ctx, h.txnKey(ctx, txnID), bh.producerID, bh.producerEpoch, partitions)
}

// produceOne appends one partition's batch and fills in its success fields.
// txnID is the request's transactional id (nil: none).
func (h *Handler) produceOne(ctx context.Context, name broker.TopicName, records []byte, txnID *string, sp *kmsg.ProduceResponseTopicPartition) error {
	transactional := txnID != nil
	bh, err := checkProduced(records, transactional)
	if err != nil {
		return err
	}
	p, err := h.svc.OpenPartition(ctx, name, false)
	if err != nil {
		return err
	}
	var res broker.AppendResult
	if transactional {
		ar, err := produceRequest(p, records, bh)
		if err != nil {
			return err
		}
		co, cerr := h.txns(ctx)
		if cerr != nil {
			return cerr
		}
		ar.Transactional, ar.ProducerID = true, bh.producerID
		res, err = co.AppendTxn(ctx, p, h.txnKey(ctx, *txnID), bh.producerEpoch, ar)
		if err != nil {
			return err
		}
	} else {
		ar, err := produceRequest(p, records, bh)
		if err != nil {
			return err
		}
		pend, err := p.AppendAsync(ar)
		if err != nil {
			return err
		}
		if res, err = pend.Wait(ctx); err != nil {
			return err
		}
	}
	sp.BaseOffset = res.Entry.FirstIndex
	sp.LogStartOffset = p.LogStart()
	return nil
}

// produceAsync queues one partition's batch of a non-transactional
// request; the PendingAppend's Wait answers once it is durable.
func (h *Handler) produceAsync(p *broker.Partition, records []byte) (*broker.PendingAppend, error) {
	bh, err := checkProduced(records, false)
	if err != nil {
		return nil, err
	}
	ar, err := produceRequest(p, records, bh)
	if err != nil {
		return nil, err
	}
	return p.AppendAsync(ar)
}

// checkProduced validates a produced batch and that it is transactional
// exactly when its request is.
func checkProduced(records []byte, transactional bool) (batchHeader, error) {
	bh, err := validateProduced(records)
	if err != nil {
		return bh, err
	}
	if txnBatch := bh.attributes&attrTransactional != 0; txnBatch != transactional {
		return bh, fmt.Errorf("%w: transactional batch %v in a request with transactional id %v", errInvalidRecord, txnBatch, transactional)
	}
	return bh, nil
}

// produceRequest builds p's append of a checked batch (header bh):
// recompressed to the topic's compression.type, keyed on a compacted
// topic, with the producer's sequence range unwrapped into the
// partition's.
func produceRequest(p *broker.Partition, records []byte, bh batchHeader) (broker.AppendRequest, error) {
	var err error
	if records, err = recompress(records, bh, p.Policies().CompressionType); err != nil {
		return broker.AppendRequest{}, err
	}
	if p.Policies().KafkaCompacted() {
		if err := checkKeyed(records); err != nil {
			return broker.AppendRequest{}, err
		}
	}
	ar := broker.AppendRequest{
		Format:   broker.FormatKafka,
		MsgCount: bh.recordCount,
		Data:     records,
	}
	if bh.maxTimestamp > 0 {
		ar.MaxEventTime = bh.maxTimestamp
	}
	if bh.producerID >= 0 {
		ar.Producer = kafkaProducerPrefix + strconv.FormatInt(bh.producerID, 10)
		ar.Epoch = int64(bh.producerEpoch)
		ar.SeqFirst = unwrapSequence(p.LastSequence(ar.Producer), bh.baseSequence)
		ar.SeqLast = ar.SeqFirst + int64(bh.recordCount) - 1
		ar.StrictSequence = true
	}
	return ar, nil
}

// seqCycle is the period of Kafka sequence numbers: after MaxInt32 a
// producer continues at 0 (mid-batch too).
const seqCycle = 1 << 31

// unwrapSequence maps a batch's int32 base sequence into the partition's
// int64 sequence space, which never wraps: the value congruent to base
// (mod 2^31) nearest to last+1. A producer at a million records a second
// per partition wraps in about 36 minutes, so this is not theoretical.
// last is the producer's last unwrapped sequence (-1: none yet).
func unwrapSequence(last int64, base int32) int64 {
	if last < 0 {
		return int64(base)
	}
	next := last + 1
	cand := next - next%seqCycle + int64(base)
	switch {
	case cand-next > seqCycle/2:
		cand -= seqCycle
	case next-cand > seqCycle/2:
		cand += seqCycle
	}
	return cand
}

// checkKeyed refuses a batch with a keyless record, as Kafka does for a
// compacted topic (INVALID_RECORD): compaction keeps records by key.
func checkKeyed(records []byte) error {
	recs, err := convert.CompactionCodec{}.Records(&broker.Entry{Format: broker.FormatKafka, Data: records})
	if err != nil {
		return fmt.Errorf("%w: %v", errInvalidRecord, err)
	}
	for _, r := range recs {
		if r.Key == nil && !r.Control {
			return fmt.Errorf("%w: compacted topic cannot accept a record without a key (offset delta %d)", errInvalidRecord, r.Offset)
		}
	}
	return nil
}
