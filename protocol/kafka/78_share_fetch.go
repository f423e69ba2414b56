package kafka

// ShareFetch (key 78), versions 1-2 (KIP-932; v2 is Kafka 4.2's, which
// franz-go requires: ShareAcquireMode, IsRenewAck).
//
// Opens (epoch 0), continues (the session's epoch) or closes (-1) the
// member's share session (group_share.go), adds the request's partitions
// to it and drops the forgotten ones, applies the piggybacked
// acknowledgements (AcknowledgeErrorCode per partition), and then, unless
// the session closes or the request only renews locks, acquires up to
// MaxRecords records across the session's partitions, waiting up to
// MaxWaitMillis for the first. Each partition answers its acquired
// entries as Kafka batches with AcquiredRecords ranges and delivery
// counts; records of those batches outside the ranges were acknowledged
// before and are not the member's. The acquisition lock timeout is the
// group's share.record.lock.duration.ms. ShareAcquireMode 0
// (batch-optimized) acquires whole batches, so the last one may pass
// MaxRecords; 1 (record limit) acquires exactly at most MaxRecords
// records, splitting a batch: the batch is sent whole and its
// AcquiredRecords name the records acquired, the rest coming in later
// fetches of the same session.
//
// Top-level errors: UNKNOWN_MEMBER_ID (not a member of the share group),
// SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH,
// GROUP_AUTHORIZATION_FAILED. Partition errors: UNKNOWN_TOPIC_ID,
// UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(1, 2, handleShareFetch) }

// shareRespParts builds a share response's topics in first-seen order.
type shareRespParts[P any] struct {
	order []sharePartKey
	parts map[sharePartKey]*P
}

func (r *shareRespParts[P]) get(k sharePartKey, init func(*P)) *P {
	if r.parts == nil {
		r.parts = map[sharePartKey]*P{}
	}
	p := r.parts[k]
	if p == nil {
		p = new(P)
		init(p)
		r.parts[k] = p
		r.order = append(r.order, k)
	}
	return p
}

func handleShareFetch(ctx context.Context, c *conn, req *kmsg.ShareFetchRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	resp.AcquisitionLockTimeoutMillis = int32(30000)
	s, err := c.h.shareCoord(ctx)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMsg(err)
		return resp, nil
	}
	group, member := derefString(req.GroupID), derefString(req.MemberID)
	ss, err := s.session(c, group, member, req.ShareSessionEpoch)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMsg(err)
		return resp, nil
	}
	unlock := ss.lock()
	if unlock == nil {
		resp.ErrorCode = errShareSessionNotFound.Code
		return resp, nil
	}
	defer unlock()
	if cfg, err := s.configs(ctx, group); err == nil {
		resp.AcquisitionLockTimeoutMillis = int32(shareConfigInt(cfg, "share.record.lock.duration.ms"))
	}
	final := req.ShareSessionEpoch == -1
	var out shareRespParts[kmsg.ShareFetchResponseTopicPartition]
	respPart := func(k sharePartKey) *kmsg.ShareFetchResponseTopicPartition {
		return out.get(k, func(p *kmsg.ShareFetchResponseTopicPartition) {
			*p = kmsg.NewShareFetchResponseTopicPartition()
			p.Partition = k.partition
			p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = c.h.cfg.NodeID, 0
		})
	}
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			k := sharePartKey{rt.TopicID, rp.Partition}
			var p *sharePart
			if final {
				p = ss.parts[k]
			} else {
				p = s.part(ctx, ss, rt.TopicID, rp.Partition)
			}
			sp := respPart(k)
			if len(rp.AcknowledgementBatches) == 0 {
				continue
			}
			var ackErr error
			switch {
			case req.ShareSessionEpoch == 0:
				ackErr = errInvalidShareSessionEpoch
			case p == nil:
				ackErr = errShareSessionNotFound
			default:
				batches := make([]shareAckBatch, 0, len(rp.AcknowledgementBatches))
				for _, b := range rp.AcknowledgementBatches {
					batches = append(batches, shareAckBatch{b.FirstOffset, b.LastOffset, b.AcknowledgeTypes})
				}
				ackErr = acknowledgeShare(ctx, p, batches)
			}
			sp.AcknowledgeErrorCode, sp.AcknowledgeErrorMessage = errCode(ackErr), errMsg(ackErr)
		}
	}
	for _, ft := range req.ForgottenTopicsData {
		for _, p := range ft.Partitions {
			ss.forgetPart(ctx, ft.TopicID, p)
		}
	}
	if final {
		ss.closeLocked()
	}
	if !final && !req.IsRenewAck {
		c.h.shareAcquire(ctx, s, ss, req, respPart)
	}
	byTopic := map[[16]byte]int{}
	for _, k := range out.order {
		i, ok := byTopic[k.id]
		if !ok {
			i = len(resp.Topics)
			byTopic[k.id] = i
			t := kmsg.NewShareFetchResponseTopic()
			t.TopicID = k.id
			resp.Topics = append(resp.Topics, t)
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, *out.parts[k])
	}
	return resp, nil
}

// shareAcquire fills the session's partitions with acquired records.
func (h *Handler) shareAcquire(ctx context.Context, s *shareCoordinator, ss *shareSession, req *kmsg.ShareFetchRequest, respPart func(sharePartKey) *kmsg.ShareFetchResponseTopicPartition) {
	maxRecords := int(req.MaxRecords)
	if maxRecords <= 0 {
		maxRecords = 500
	}
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 50 << 20
	}
	keys := make([]sharePartKey, 0, len(ss.parts))
	for k := range ss.parts {
		keys = append(keys, k)
	}
	// Errors of partitions that could not attach: retried, then answered.
	for _, k := range keys {
		if p := s.part(ctx, ss, k.id, k.partition); p.err != nil {
			sp := respPart(k)
			sp.ErrorCode, sp.ErrorMessage = errCode(p.err), errMsg(p.err)
		}
	}
	deadline := time.Now().Add(time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond)
	records, size := 0, 0
	last := false
	for {
		var wakes []<-chan struct{}
		for _, k := range keys {
			p := ss.parts[k]
			if p == nil || p.sc == nil || records >= maxRecords || size >= maxBytes {
				continue
			}
			wakes = append(wakes, p.sc.Ready())
			got, err := p.sc.Acquire(ctx, maxRecords-records, 0, req.ShareAcquireMode == 1)
			if errors.Is(err, broker.ErrClosed) {
				// The partition closed (deleted, unloaded): attach
				// again at the next fetch.
				p.sc.Close(ctx)
				p.sc = nil
				continue
			}
			if err != nil || len(got) == 0 {
				continue
			}
			sp := respPart(k)
			maxBatch := int(p.sc.Subscription().Partition().Policies().MaxMessageBytes)
			for _, ae := range got {
				sp.Records = h.appendFetched(sp.Records, &ae.Entry, maxBatch)
				for _, r := range ae.Ranges {
					ar := kmsg.NewShareFetchResponseTopicPartitionAcquiredRecord()
					ar.FirstOffset, ar.LastOffset, ar.DeliveryCount = r[0], r[1], int16(ae.DeliveryCount)
					sp.AcquiredRecords = append(sp.AcquiredRecords, ar)
					records += int(r[1] - r[0] + 1)
				}
			}
			size += len(sp.Records)
		}
		left := time.Until(deadline)
		if records > 0 || left <= 0 || len(wakes) == 0 || last {
			if records == 0 && left > 0 && !last {
				// No partition to wait on: wait out MaxWait anyway, as a
				// fetch without data does, so that clients do not spin.
				waitAny(ctx, h.closing, nil, left)
			}
			return
		}
		if !waitAny(ctx, h.closing, wakes, left) {
			// Timed out or closing: one last look (an entry may have
			// arrived at the end), then answer.
			last = true
		}
	}
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
