package kafka

// Fetch (key 1), versions 4-12 (record batch v2; Kafka 2.8's maximum; v13+
// addresses topics by ID and is not served).
//
// Stored Kafka batches are returned as produced, with the base offset set to
// the entry's first message index and the partition leader epoch set to 0
// (neither is under the batch CRC). Limits follow Kafka: partition max bytes
// and max bytes bound the response, but the first batch of the first
// non-empty partition is returned even if larger (KIP-74). With less than
// min bytes available the request long-polls up to max wait, woken by the
// partitions' Changed channels. High watermark = the partition's next
// index, log start = its LogStart (the first index; for a compact-only
// topic whose raw ledgers were released, the view's first offset).
// read_uncommitted (isolation 0) reads up to the high watermark and answers LastStableOffset = the partition's
// last stable offset; read_committed (1) reads only entries below the last
// stable offset (an open transaction holds the reader back at its first
// record) and answers the aborted transactions (producer id, first offset)
// whose records may lie in the returned range: the client drops their
// records itself, up to the abort marker (KIP-98). Control batches (the
// markers) are returned to both, as Kafka does; clients skip them.
// Incremental fetch sessions (KIP-227, v7+) are in fetch_session.go.
// Large batches are written from storage's buffers (its entry cache or
// the buffers they were read into; fetch_response.go), with their first
// 16 bytes, which a fetch rewrites, copied.
//
// A topic whose cleanup.policy includes compact is read from its compacted
// view below the view's cleaned point (batches with offset gaps, as Kafka's
// cleaner leaves them) and from the raw log above it (docs/compaction.md).
//
// Entries produced through Pulsar are converted to one uncompressed batch
// at their first index (package convert); the converted size is what counts
// against the limits. An entry that cannot be converted (encrypted or
// chunked Pulsar messages, corruption) is returned as an empty batch
// covering its offsets, the shape compaction leaves behind, so consumers
// move past it and offsets stay exact.

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
)

func init() { register(4, 12, handleFetch) }

// maxFetchEntries bounds one partition read; bytes usually stop it first.
const maxFetchEntries = 4096

// partRead is one partition's state during a fetch.
type partRead struct {
	sp    *sessionPart
	p     *broker.Partition
	err   error
	hw    int64
	lso   int64
	start int64
	// upTo is the end (exclusive) of what read_committed may read; the
	// high watermark for read_uncommitted.
	upTo int64
	// lastRead is the index after the last entry returned.
	lastRead int64
	records  *fetchedRecords // nil: none; owned by the response once built
}

func handleFetch(ctx context.Context, c *conn, req *kmsg.FetchRequest) (kmsg.Response, error) {
	h := c.h
	resp := &fetchResponse{FetchResponse: req.ResponseKind().(*kmsg.FetchResponse)}

	parts, sess, incremental, err := h.fs.begin(req)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	if sess != nil {
		defer sess.mu.Unlock()
		resp.SessionID = sess.id
	}

	// Resolve topics and partitions once; the long poll re-reads only.
	reads := make([]*partRead, len(parts))
	topics := map[string]*topicInfo{}
	topicErrs := map[string]error{}
	for i, sp := range parts {
		pr := &partRead{sp: sp}
		reads[i] = pr
		t, ok := topics[sp.topic]
		if !ok && topicErrs[sp.topic] == nil {
			t, err = h.lookupTopic(ctx, sp.topic, auth.NeedConsume, false)
			if err != nil {
				topicErrs[sp.topic] = err
			} else {
				topics[sp.topic] = t
			}
		}
		if t == nil {
			pr.err = topicErrs[sp.topic]
			continue
		}
		name, ok := t.partition(sp.partition)
		if !ok {
			pr.err = errUnknownPartition(sp.topic, sp.partition)
			continue
		}
		pr.p, pr.err = h.svc.OpenPartition(ctx, name, false)
	}

	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = math.MaxInt32
	}
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	deadline := time.Now().Add(maxWait)
	var wake []<-chan struct{}
	for {
		wake = wake[:0]
		for _, pr := range reads {
			if pr.p != nil {
				// Taken before reading, so no append between the read
				// and the wait is missed.
				wake = append(wake, pr.p.Changed())
				if pr.p.HasTransactions() {
					wake = append(wake, pr.p.TxnChanged()) // the LSO moved
				}
			}
		}
		total, failed := 0, false
		for _, pr := range reads {
			h.readPartition(ctx, pr, maxBytes-total, total == 0, req.IsolationLevel == 1)
			if pr.records != nil {
				total += pr.records.size
			}
			failed = failed || pr.err != nil
		}
		if total >= int(req.MinBytes) || failed || !time.Now().Before(deadline) {
			break
		}
		if !waitAny(ctx, h.closing, wake, time.Until(deadline)) {
			break
		}
	}

	// Build the response: every partition for a full fetch, only changed
	// ones for an incremental one. Consecutive partitions of one topic
	// share a topic entry, keeping the request's (session's) order. The
	// records move to the response, which releases them once written.
	for _, pr := range reads {
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = pr.sp.partition
		// Never null: librdkafka rejects a null record set (size -1).
		rp.RecordBatches = []byte{}
		rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
		if pr.err == nil || pr.p != nil {
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = pr.hw, pr.lso, pr.start
		}
		if req.IsolationLevel == 1 && pr.records != nil && pr.p.HasTransactions() {
			rp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			for _, a := range pr.p.AbortedTxns(pr.sp.offset, pr.lastRead) {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstIndex
				rp.AbortedTransactions = append(rp.AbortedTransactions, at)
			}
		}
		if pr.err != nil {
			rp.ErrorCode = h.partitionErrCode(ctx, "fetch", pr.sp.topic, pr.sp.partition, pr.err)
		}
		records := 0
		if pr.records != nil {
			records = pr.records.size
			// Counted once, as sent: the long poll re-reads.
			pr.p.AddOut(int64(pr.records.msgs), int64(records))
		}
		if incremental && !pr.sp.changed(rp, records) {
			if pr.records != nil {
				pr.records.release()
			}
			continue
		}
		pr.sp.sent(rp)
		n := len(resp.Topics)
		if n == 0 || resp.Topics[n-1].Topic != pr.sp.topic {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = pr.sp.topic
			resp.Topics = append(resp.Topics, rt)
			n++
		}
		resp.Topics[n-1].Partitions = append(resp.Topics[n-1].Partitions, rp)
		resp.records = append(resp.records, pr.records)
	}
	return resp, nil
}

// readPartition reads pr's records from its fetch offset, within the
// partition's max bytes and the response's remaining budget. first says no
// earlier partition returned data, so one oversized batch is allowed.
// committed (read_committed) stops at the last stable offset.
func (h *Handler) readPartition(ctx context.Context, pr *partRead, remaining int, first, committed bool) {
	if pr.records != nil {
		pr.records.release() // an earlier round of the long poll; nothing refers to it
		pr.records = nil
	}
	if pr.p == nil {
		return
	}
	pr.err = nil
	// The LSO first: it is <= the high watermark read after it.
	pr.lso = pr.p.LastStableOffset()
	pr.hw, pr.start = pr.p.NextIndex(), pr.p.LogStart()
	pr.upTo = pr.hw
	if committed {
		pr.upTo = pr.lso
	}
	off := pr.sp.offset
	pr.lastRead = off
	if off < pr.start || off > pr.hw {
		pr.err = broker.ErrOffsetOutOfRange
		return
	}
	if off >= pr.upTo {
		return
	}
	limit := int(pr.sp.maxBytes)
	if limit > remaining {
		limit = remaining
	}
	if limit <= 0 && !first {
		return
	}
	read := pr.p.ReadFromIndex
	if !first {
		// Only what fits: a batch that would be dropped below is not read.
		read = pr.p.ReadFromIndexWithin
	}
	if pr.p.Policies().KafkaCompacted() {
		// The compacted view below its cleaned point, the raw tail above.
		read = func(ctx context.Context, index int64, maxEntries, maxBytes int) ([]broker.Entry, error) {
			return pr.p.ReadCompacted(ctx, index, maxEntries, maxBytes, !first)
		}
	}
	entries, err := read(ctx, off, maxFetchEntries, max(limit, 1))
	if err != nil {
		pr.err = err
		return
	}
	if len(entries) == 0 {
		return
	}
	if committed {
		// Entries never straddle the LSO: it is an entry's first index.
		n := 0
		for n < len(entries) && entries[n].FirstIndex < pr.upTo {
			n++
		}
		for i := n; i < len(entries); i++ {
			entries[i].Release()
		}
		if entries = entries[:n]; n == 0 {
			return
		}
	}
	maxBatch := int(pr.p.Policies().MaxMessageBytes)
	fr := &fetchedRecords{}
	// Batches are added while they fit; only the first non-empty
	// partition may exceed the limits, with its first batch (KIP-74).
	// Converted entries are measured after conversion.
	for i := range entries {
		e := &entries[i]
		if e.Format == broker.FormatKafka && len(e.Data) >= minSpliceBytes {
			if fr.size+len(e.Data) > limit && (i > 0 || !first) {
				break
			}
			// Read results are read-only (storage's entry cache may
			// share them): the header fields the fetch rewrites are
			// copied, the rest is written from storage's buffer.
			if fr.copies == nil {
				fr.copies = getBuf(64 << 10)
			}
			n := len(fr.copies)
			fr.copies = append(fr.copies, e.Data[:batchRewritten]...)
			setBatchOffset(fr.copies[n:], e.FirstIndex)
			fr.add(batchRewritten)
			fr.msgs += int(max(e.MsgCount, 1))
			fr.splice(*e, e.Data[batchRewritten:])
			pr.lastRead = e.LastIndex() + 1
			entries[i] = broker.Entry{} // held by fr now
			continue
		}
		if fr.copies == nil {
			fr.copies = getBuf(max(len(e.Data), 64<<10))
		}
		n := len(fr.copies)
		fr.copies = h.appendFetched(fr.copies, e, maxBatch)
		if fr.size+len(fr.copies)-n > limit && (i > 0 || !first) {
			fr.copies = fr.copies[:n]
			break
		}
		fr.add(len(fr.copies) - n)
		fr.msgs += int(max(e.MsgCount, 1))
		pr.lastRead = e.LastIndex() + 1
	}
	fr.closeRun()
	for i := range entries {
		entries[i].Release() // not held: copied, or not returned
	}
	if fr.size == 0 {
		fr.release()
		return
	}
	pr.records = fr
}

// appendFetched appends e as a Kafka batch at its offset. The stored bytes
// are copied, not modified.
// A converted batch larger than maxBatch (the largest batch a Kafka
// producer could have stored) is LZ4-compressed.
func (h *Handler) appendFetched(dst []byte, e *broker.Entry, maxBatch int) []byte {
	start := len(dst)
	if e.Format != broker.FormatKafka {
		out, err := convert.AppendPulsarToKafka(dst, e, maxBatch)
		if err != nil {
			// Only a corrupt entry fails to convert (produce validated
			// it): say so loudly, since the consumer sees no records.
			h.log.Warn("entry not converted to Kafka records; an empty batch spans its offsets", "position", e.Position,
				"first_offset", e.FirstIndex, "records", e.MsgCount, "err", err)
			return appendEmptyBatch(dst, e)
		}
		return out
	}
	dst = append(dst, e.Data...)
	setBatchOffset(dst[start:], e.FirstIndex)
	return dst
}

// batchRewritten is how many leading bytes of a stored Kafka batch a
// fetch rewrites: base offset, batch length (unchanged) and partition
// leader epoch.
const batchRewritten = 16

// setBatchOffset sets a stored Kafka batch's base offset to the entry's
// first message index and its partition leader epoch to 0 (neither is
// under the batch CRC). b may hold just the batch's first batchRewritten
// bytes.
func setBatchOffset(b []byte, firstIndex int64) {
	if len(b) >= batchRewritten {
		binary.BigEndian.PutUint64(b, uint64(firstIndex))
		binary.BigEndian.PutUint32(b[12:], 0) // partition leader epoch
	}
}

// appendEmptyBatch appends a record-less v2 batch spanning e's offsets:
// what Kafka's compaction leaves when it removes every record of a batch.
// Consumers advance past it. Used for entries that cannot be converted.
func appendEmptyBatch(dst []byte, e *broker.Entry) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.FirstIndex))
	dst = binary.BigEndian.AppendUint32(dst, batchHeaderSize-12)
	dst = binary.BigEndian.AppendUint32(dst, 0) // leader epoch
	dst = append(dst, 2)                        // magic
	dst = append(dst, 0, 0, 0, 0)               // crc, below
	dst = binary.BigEndian.AppendUint16(dst, 0) // attributes
	dst = binary.BigEndian.AppendUint32(dst, uint32(e.MsgCount-1))
	ts := e.Timestamp()
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = binary.BigEndian.AppendUint64(dst, math.MaxUint64) // producer id -1
	dst = binary.BigEndian.AppendUint16(dst, math.MaxUint16) // epoch -1
	dst = binary.BigEndian.AppendUint32(dst, math.MaxUint32) // sequence -1
	dst = binary.BigEndian.AppendUint32(dst, 0)              // records
	binary.BigEndian.PutUint32(dst[start+17:], crc32.Checksum(dst[start+21:], castagnoli))
	return dst
}

// waitAny waits until a channel in chans closes, the timeout passes, the
// handler closes or ctx ends. It reports whether to poll again (false:
// stop now).
func waitAny(ctx context.Context, closing <-chan struct{}, chans []<-chan struct{}, timeout time.Duration) bool {
	if timeout <= 0 || len(chans) == 0 {
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			select {
			case <-t.C:
			case <-closing:
			case <-ctx.Done():
			}
		}
		return false
	}
	woke := make(chan struct{}, 1)
	done := make(chan struct{})
	defer close(done)
	for _, ch := range chans {
		go func() {
			select {
			case <-ch:
				select {
				case woke <- struct{}{}:
				default:
				}
			case <-done:
			}
		}()
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-woke:
		return true
	case <-t.C:
	case <-closing:
	case <-ctx.Done():
	}
	return false
}

// errUnknownPartition is the error for a partition number a topic lacks.
func errUnknownPartition(topic string, p int32) error {
	return &unknownPartitionError{topic: topic, partition: p}
}

type unknownPartitionError struct {
	topic     string
	partition int32
}

func (e *unknownPartitionError) Error() string {
	return "kafka: topic " + e.topic + " has no partition " + strconv.Itoa(int(e.partition))
}

func (e *unknownPartitionError) Unwrap() error { return broker.ErrTopicNotFound }
