package kafka

// Vectored Fetch responses.
//
// A large fetched Kafka batch is sent from storage's memory (its entry
// cache, or the read buffer it was read into): the response frame holds
// everything but those batches, and the connection writes frame pieces and
// batches with one writev. Copying each batch into a record buffer and then
// into the frame cost two memory copies of every byte served.

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// minSpliceBytes: a Kafka batch at least this large is written from its
// read buffer; smaller ones are copied into the partition's copy buffer,
// where a few hundred bytes cost less to copy than an iovec and a held
// read buffer.
const minSpliceBytes = 16 << 10

// fetchedRecords is one partition's record batches in a response: pieces
// in order, each a slice of a held entry's Data or of copies.
//
// Ownership: the pieces stay valid until release, which hands the copy
// buffer back to the pool and releases the entries (storage may then reuse
// their read buffers). A fetchedRecords is released exactly once, after
// the last write that refers to it has returned.
type fetchedRecords struct {
	pieces  [][]byte
	size    int
	msgs    int            // messages in the batches (statistics)
	held    []broker.Entry // entries whose Data pieces refer to
	copies  []byte         // pooled (getBuf); converted and small batches
	runFrom int            // start of copies not yet in pieces
}

// add appends n bytes that were just appended to copies as part of the
// current run of copied bytes.
func (fr *fetchedRecords) add(n int) { fr.size += n }

// splice appends b, which belongs to e (held until release), as a piece.
func (fr *fetchedRecords) splice(e broker.Entry, b []byte) {
	fr.closeRun()
	fr.pieces = append(fr.pieces, b)
	fr.size += len(b)
	fr.held = append(fr.held, e)
}

// closeRun makes the copied bytes since the last piece a piece. Pieces may
// keep referring to an earlier backing array of copies after an append
// reallocates it; its contents stay what they were.
func (fr *fetchedRecords) closeRun() {
	if len(fr.copies) > fr.runFrom {
		fr.pieces = append(fr.pieces, fr.copies[fr.runFrom:])
		fr.runFrom = len(fr.copies)
	}
}

func (fr *fetchedRecords) release() {
	for i := range fr.held {
		fr.held[i].Release()
	}
	putBuf(fr.copies)
	*fr = fetchedRecords{}
}

// fetchResponse is a FetchResponse whose partitions' record batches are
// held as pieces (records, one per partition in the order they appear in
// Topics) instead of in RecordBatches. Everything else is in the embedded
// response. It encodes like kmsg's FetchResponse with RecordBatches set to
// RecordBatches followed by the pieces.
type fetchResponse struct {
	*kmsg.FetchResponse
	records []*fetchedRecords
}

// splice is a slice written after the first at bytes of a frame.
type splice struct {
	at int
	b  []byte
}

// AppendTo encodes the response contiguously (kmsg.Response).
func (f *fetchResponse) AppendTo(dst []byte) []byte {
	dst, _ = f.appendVectored(dst, false)
	return dst
}

// appendVectored appends the response to dst. With vectored set, pieces of
// minSpliceBytes or more are not copied but returned as splices (offsets
// into the returned dst); otherwise the result is complete.
func (f *fetchResponse) appendVectored(dst []byte, vectored bool) ([]byte, []splice) {
	if !f.plain() {
		return f.flatten().AppendTo(dst), nil
	}
	var splices []splice
	v := f.Version
	flexible := v >= 12
	be := binary.BigEndian
	appendLen := func(dst []byte, n int) []byte { // array, string and bytes lengths
		if flexible {
			return binary.AppendUvarint(dst, uint64(n)+1)
		}
		return be.AppendUint32(dst, uint32(n))
	}
	dst = be.AppendUint32(dst, uint32(f.ThrottleMillis))
	if v >= 7 {
		dst = be.AppendUint16(dst, uint16(f.ErrorCode))
		dst = be.AppendUint32(dst, uint32(f.SessionID))
	}
	dst = appendLen(dst, len(f.Topics))
	k := 0
	for i := range f.Topics {
		t := &f.Topics[i]
		if flexible {
			dst = binary.AppendUvarint(dst, uint64(len(t.Topic))+1)
		} else {
			dst = be.AppendUint16(dst, uint16(len(t.Topic)))
		}
		dst = append(dst, t.Topic...)
		dst = appendLen(dst, len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			var fr *fetchedRecords
			if k < len(f.records) {
				fr = f.records[k]
			}
			k++
			dst = be.AppendUint32(dst, uint32(p.Partition))
			dst = be.AppendUint16(dst, uint16(p.ErrorCode))
			dst = be.AppendUint64(dst, uint64(p.HighWatermark))
			dst = be.AppendUint64(dst, uint64(p.LastStableOffset))
			if v >= 5 {
				dst = be.AppendUint64(dst, uint64(p.LogStartOffset))
			}
			if p.AbortedTransactions == nil {
				dst = appendNull(dst, flexible)
			} else {
				dst = appendLen(dst, len(p.AbortedTransactions))
				for _, a := range p.AbortedTransactions {
					dst = be.AppendUint64(dst, uint64(a.ProducerID))
					dst = be.AppendUint64(dst, uint64(a.FirstOffset))
					if flexible {
						dst = append(dst, 0) // no tagged fields
					}
				}
			}
			if v >= 11 {
				dst = be.AppendUint32(dst, uint32(p.PreferredReadReplica))
			}
			n := len(p.RecordBatches)
			if fr != nil {
				n += fr.size
			}
			if p.RecordBatches == nil && n == 0 {
				dst = appendNull(dst, flexible)
			} else {
				dst = appendLen(dst, n)
				dst = append(dst, p.RecordBatches...)
				if fr != nil {
					for _, b := range fr.pieces {
						if vectored && len(b) >= minSpliceBytes {
							splices = append(splices, splice{at: len(dst), b: b})
						} else {
							dst = append(dst, b...)
						}
					}
				}
			}
			if flexible {
				dst = append(dst, 0) // no tagged fields (plain)
			}
		}
		if flexible {
			dst = append(dst, 0)
		}
	}
	if flexible {
		dst = append(dst, 0)
	}
	return dst, splices
}

func appendNull(dst []byte, flexible bool) []byte {
	if flexible {
		return append(dst, 0)
	}
	return binary.BigEndian.AppendUint32(dst, 0xffffffff)
}

// plain reports whether the response sets none of the fields that
// appendVectored does not encode: tagged fields (v12+: diverging epoch,
// current leader, snapshot id, brokers, unknown tags) and topic IDs (v13+,
// not served). The handler sets none; anything else is encoded by kmsg.
func (f *fetchResponse) plain() bool {
	if f.Version < 4 || f.Version > 12 || len(f.Brokers) > 0 || f.UnknownTags.Len() > 0 {
		return false
	}
	for i := range f.Topics {
		t := &f.Topics[i]
		if t.UnknownTags.Len() > 0 {
			return false
		}
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.UnknownTags.Len() > 0 ||
				p.DivergingEpoch.Epoch != -1 || p.DivergingEpoch.EndOffset != -1 || p.DivergingEpoch.UnknownTags.Len() > 0 ||
				p.CurrentLeader.LeaderID != -1 || p.CurrentLeader.LeaderEpoch != -1 || p.CurrentLeader.UnknownTags.Len() > 0 ||
				p.SnapshotID.EndOffset != -1 || p.SnapshotID.Epoch != -1 || p.SnapshotID.UnknownTags.Len() > 0 {
				return false
			}
			for _, a := range p.AbortedTransactions {
				if a.UnknownTags.Len() > 0 {
					return false
				}
			}
		}
	}
	return true
}

// flatten returns a copy of the response with the pieces copied into
// RecordBatches.
func (f *fetchResponse) flatten() *kmsg.FetchResponse {
	out := *f.FetchResponse
	out.Topics = make([]kmsg.FetchResponseTopic, len(f.Topics))
	k := 0
	for i, t := range f.Topics {
		t.Partitions = append([]kmsg.FetchResponseTopicPartition(nil), t.Partitions...)
		for j := range t.Partitions {
			if k < len(f.records) && f.records[k] != nil && f.records[k].size > 0 {
				p := &t.Partitions[j]
				b := append([]byte(nil), p.RecordBatches...)
				for _, piece := range f.records[k].pieces {
					b = append(b, piece...)
				}
				p.RecordBatches = b
			}
			k++
		}
		out.Topics[i] = t
	}
	return &out
}

// release releases every partition's records; the response must not be
// encoded afterwards.
func (f *fetchResponse) release() {
	for _, fr := range f.records {
		if fr != nil {
			fr.release()
		}
	}
	f.records = nil
}
