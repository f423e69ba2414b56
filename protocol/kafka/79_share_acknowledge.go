package kafka

// ShareAcknowledge (key 79), versions 1-2 (KIP-932; v2 is Kafka 4.2's:
// IsRenewAck and the acquisition lock timeout in the response).
//
// Applies acknowledgements (1 accept, 2 release, 3 reject, 4 renew; 0 a
// gap) to records the member's share session holds acquired, on the
// session's epoch (which moves on), or closes the session after applying
// them (-1). Accepted and rejected records are cursor acknowledgements
// before the answer. A record not held acquired is INVALID_RECORD_STATE
// for its partition; a partition not in the session is
// SHARE_SESSION_NOT_FOUND for it. Epoch 0 (no session can be opened by an
// acknowledgement) is INVALID_SHARE_SESSION_EPOCH.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(1, 2, handleShareAcknowledge) }

func handleShareAcknowledge(ctx context.Context, c *conn, req *kmsg.ShareAcknowledgeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	resp.AcquisitionLockTimeoutMillis = 30000
	s, err := c.h.shareCoord(ctx)
	if err == nil && req.ShareSessionEpoch == 0 {
		err = errInvalidShareSessionEpoch
	}
	var ss *shareSession
	if err == nil {
		ss, err = s.session(c, derefString(req.GroupID), derefString(req.MemberID), req.ShareSessionEpoch)
	}
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
	if cfg, err := s.configs(ctx, ss.key.group); err == nil {
		resp.AcquisitionLockTimeoutMillis = int32(shareConfigInt(cfg, "share.record.lock.duration.ms"))
	}
	for _, rt := range req.Topics {
		t := kmsg.NewShareAcknowledgeResponseTopic()
		t.TopicID = rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewShareAcknowledgeResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = c.h.cfg.NodeID, 0
			var ackErr error
			if p := ss.parts[sharePartKey{rt.TopicID, rp.Partition}]; p == nil {
				ackErr = errShareSessionNotFound
			} else {
				batches := make([]shareAckBatch, 0, len(rp.AcknowledgementBatches))
				for _, b := range rp.AcknowledgementBatches {
					batches = append(batches, shareAckBatch{b.FirstOffset, b.LastOffset, b.AcknowledgeTypes})
				}
				ackErr = acknowledgeShare(ctx, p, batches)
			}
			sp.ErrorCode, sp.ErrorMessage = errCode(ackErr), errMsg(ackErr)
			t.Partitions = append(t.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, t)
	}
	if req.ShareSessionEpoch == -1 {
		ss.closeLocked()
	}
	return resp, nil
}
