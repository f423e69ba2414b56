package kafka

// TxnOffsetCommit (key 28), versions 0-5 (v3 carries the group generation
// and member, KIP-447; v4 adds TRANSACTION_ABORTABLE to the codes a client
// may get; v5 is transactions v2, KIP-890 part 2).
//
// Records offsets of a group in the producer's transaction (the group must
// have been added with AddOffsetsToTxn: INVALID_TXN_STATE otherwise; v5
// under transaction-version 2 adds it itself, beginning the transaction
// if none is open). They
// are applied as OffsetCommit applies them, moving the group's subscription
// on each partition (group_offsets.go), only when the transaction commits;
// an abort drops them. v3 with a member id is checked against the group like
// an OffsetCommit of that member and generation. Offsets pending in an open
// transaction are not visible to OffsetFetch; a require_stable fetch of such
// a partition gets UNSTABLE_OFFSET_COMMIT (09_offset_fetch.go).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 5, handleTxnOffsetCommit) }

func handleTxnOffsetCommit(ctx context.Context, c *conn, req *kmsg.TxnOffsetCommitRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	var groupErr error
	var gc *coordinator
	if err := h.checkGroup(ctx); err != nil {
		groupErr = err
	} else if gc, err = h.groupCoordinator(ctx, req.Group); err != nil {
		// Cluster mode: sent to the group's coordinator, as in Kafka.
		groupErr = err
	} else if req.Version >= 3 && req.MemberID != "" {
		instance := ""
		if req.InstanceID != nil {
			instance = *req.InstanceID
		}
		if e := gc.commitCheck(req.Group, req.MemberID, instance, req.Generation); e != nil {
			groupErr = e
		}
	}
	codes := make([][]int16, len(req.Topics))
	var offsets []broker.TxnOffset
	var topics []string
	for i, rt := range req.Topics {
		codes[i] = make([]int16, len(rt.Partitions))
		var t *topicInfo
		terr := groupErr
		if terr == nil {
			t, terr = h.lookupTopic(ctx, rt.Topic, auth.NeedConsume, false)
			if terr == nil {
				topics = append(topics, t.md.Name.String())
			}
		}
		for j, rp := range rt.Partitions {
			switch {
			case terr != nil:
				codes[i][j] = errCode(terr)
			case rp.Metadata != nil && len(*rp.Metadata) > maxOffsetMetadata:
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
			default:
				name, ok := t.partition(rp.Partition)
				if !ok {
					codes[i][j] = kerr.UnknownTopicOrPartition.Code
					continue
				}
				epoch := rp.LeaderEpoch
				if req.Version < 2 {
					epoch = -1
				}
				offsets = append(offsets, broker.TxnOffset{Partition: name.String(), NextIndex: rp.Offset, Properties: txnOffsetProperties(epoch, rp.Metadata)})
			}
		}
	}
	var code int16
	if len(offsets) > 0 {
		co, err := h.txns(ctx)
		if err == nil {
			// The group's record lists its topics first, as for
			// OffsetCommit, so that OffsetFetch(all) finds them.
			gc.addTopics(req.Group, topics)
			id := h.txnKey(ctx, req.TransactionalID)
			if h.txnV2(req.Version, 5) {
				err = co.JoinGroup(ctx, id, req.ProducerID, req.ProducerEpoch, req.Group)
			}
			if err == nil {
				err = co.CommitOffsets(ctx, id, req.ProducerID, req.ProducerEpoch, req.Group, offsets)
			}
		}
		if err != nil {
			c.log.DebugContext(ctx, "kafka: TxnOffsetCommit failed", "transactional_id", req.TransactionalID, "group", req.Group, "err", err)
		}
		code = errCode(err)
	}
	for i, rt := range req.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for j, rp := range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = codes[i][j]
			if sp.ErrorCode == 0 {
				sp.ErrorCode = code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
