package kafka

// OffsetFetch (key 9), versions 0-8 (v8: several groups per request,
// KIP-709).
//
// Answers each partition's committed offset: the position of the group's
// subscription on it (group_offsets.go), -1 where the group has none (also
// for unknown topics and partitions, as Kafka's offsets cache does). Null
// topics (v2+) mean every partition the group committed to. Leader epoch
// and metadata are those of the commit (-1 and "" when set some other way,
// e.g. by a Pulsar consumer). Null topics also cover every partition of
// the namespace where a subscription of the group's name exists, e.g. one
// made by Pulsar consumers (group_pulsar.go). RequireStable (v7+): a named
// partition with a transactional commit of the group still pending in an
// open transaction gets UNSTABLE_OFFSET_COMMIT (retriable; KIP-447), so
// that a consumer taking the partition over does not start from an offset
// about to move.

import (
	"context"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 8, handleOffsetFetch) }

// fetchedTopic is one topic of an OffsetFetch answer, version-neutral.
type fetchedTopic struct {
	topic      string
	partitions []fetchedPartition
}

type fetchedPartition struct {
	partition int32
	committed
	code int16
}

func handleOffsetFetch(ctx context.Context, c *conn, req *kmsg.OffsetFetchRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			var topics map[string][]int32
			var order []string
			if rg.Topics != nil {
				topics = map[string][]int32{}
				for _, t := range rg.Topics {
					if _, dup := topics[t.Topic]; !dup {
						order = append(order, t.Topic)
					}
					topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
				}
			}
			ft, code := c.h.fetchGroupOffsets(ctx, rg.Group, order, topics, req.RequireStable)
			sg := kmsg.NewOffsetFetchResponseGroup()
			sg.Group, sg.ErrorCode = rg.Group, code
			for _, t := range ft {
				st := kmsg.NewOffsetFetchResponseGroupTopic()
				st.Topic = t.topic
				for _, p := range t.partitions {
					sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					sp.Partition, sp.Offset, sp.LeaderEpoch, sp.ErrorCode = p.partition, p.offset, p.leaderEpoch, p.code
					md := p.metadata
					sp.Metadata = &md
					st.Partitions = append(st.Partitions, sp)
				}
				sg.Topics = append(sg.Topics, st)
			}
			resp.Groups = append(resp.Groups, sg)
		}
		return resp, nil
	}
	var topics map[string][]int32
	var order []string
	if req.Topics != nil || req.Version < 2 {
		topics = map[string][]int32{}
		for _, t := range req.Topics {
			if _, dup := topics[t.Topic]; !dup {
				order = append(order, t.Topic)
			}
			topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
		}
	}
	ft, code := c.h.fetchGroupOffsets(ctx, req.Group, order, topics, req.Version >= 7 && req.RequireStable)
	resp.ErrorCode = code
	for _, t := range ft {
		st := kmsg.NewOffsetFetchResponseTopic()
		st.Topic = t.topic
		for _, p := range t.partitions {
			sp := kmsg.NewOffsetFetchResponseTopicPartition()
			sp.Partition, sp.Offset, sp.LeaderEpoch, sp.ErrorCode = p.partition, p.offset, p.leaderEpoch, p.code
			md := p.metadata
			sp.Metadata = &md
			if code != 0 {
				sp.ErrorCode = code // v0-v1 have no group-level error
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// fetchGroupOffsets answers one group: the named topics' partitions in
// request order, or (topics nil) every partition the group has a commit on.
func (h *Handler) fetchGroupOffsets(ctx context.Context, group string, order []string, topics map[string][]int32, requireStable bool) ([]fetchedTopic, int16) {
	var txns *broker.TxnCoordinator
	if requireStable {
		txns, _ = h.txns(ctx) // unavailable: no transaction can be pending
	}
	co, err := h.groupCoordinator(ctx, group)
	if err != nil {
		// Answer the partitions anyway so that v0-v1 clients see the error.
		var out []fetchedTopic
		for _, t := range order {
			ft := fetchedTopic{topic: t}
			for _, p := range topics[t] {
				ft.partitions = append(ft.partitions, fetchedPartition{partition: p, committed: committed{offset: -1, leaderEpoch: -1}, code: errCode(err)})
			}
			out = append(out, ft)
		}
		return out, errCode(err)
	}
	var out []fetchedTopic
	if topics == nil {
		// The topics the group committed to, and every partition of the
		// namespace where its subscription exists (made by Pulsar
		// consumers, or moved by the admin API).
		all := groupPartitionSet(h.groupPartitions(ctx, co.groupTopics(group)))
		if subs, err := h.subscriptionPartitions(ctx, group); err == nil {
			all.merge(subs[group])
		} else {
			h.log.WarnContext(ctx, "kafka: offset fetch: listing subscriptions", "group", group, "err", err)
		}
		knames := slices.Sorted(maps.Keys(all))
		for _, kname := range knames {
			parts := all[kname]
			ft := fetchedTopic{topic: kname}
			for _, pn := range parts {
				cm, err := h.fetchOffset(ctx, group, pn)
				if err != nil || cm.offset < 0 {
					continue
				}
				ft.partitions = append(ft.partitions, fetchedPartition{partition: partitionIndex(pn), committed: cm})
			}
			if len(ft.partitions) > 0 {
				out = append(out, ft)
			}
		}
		return out, 0
	}
	for _, kname := range order {
		ft := fetchedTopic{topic: kname}
		t, terr := h.lookupTopic(ctx, kname, auth.NeedLookup, false)
		for _, p := range topics[kname] {
			fp := fetchedPartition{partition: p, committed: committed{offset: -1, leaderEpoch: -1}}
			var name broker.TopicName
			ok := false
			if terr == nil {
				name, ok = t.partition(p)
			}
			if ok && txns != nil && txns.PendingOffset(group, name) {
				fp.code = kerr.UnstableOffsetCommit.Code
			} else if ok {
				cm, err := h.fetchOffset(ctx, group, name)
				if err != nil {
					fp.code = errCode(err)
				} else {
					fp.committed = cm
				}
			}
			ft.partitions = append(ft.partitions, fp)
		}
		out = append(out, ft)
	}
	return out, 0
}
