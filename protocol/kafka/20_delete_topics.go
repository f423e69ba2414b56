package kafka

// DeleteTopics (key 20), versions 0-6 (Kafka 2.8's maximum).
//
// Deletes the topic, all its partitions and their data, even with clients
// attached (as Kafka does; they get errors and refresh metadata). v6 may name
// topics by id: ids are looked up among the handler namespace's topics.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 6, handleDeleteTopics) }

func handleDeleteTopics(ctx context.Context, c *conn, req *kmsg.DeleteTopicsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	topics := req.Topics
	if req.Version < 6 {
		topics = nil
		for _, n := range req.TopicNames {
			t := kmsg.NewDeleteTopicsRequestTopic()
			t.Topic = kmsg.StringPtr(n)
			topics = append(topics, t)
		}
	}
	for _, rt := range topics {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		err := h.deleteTopic(ctx, c, &rt, &st)
		if err != nil {
			st.ErrorCode, st.ErrorMessage = errCode(err), errMsg(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (h *Handler) deleteTopic(ctx context.Context, c *conn, rt *kmsg.DeleteTopicsRequestTopic, st *kmsg.DeleteTopicsResponseTopic) error {
	var t *topicInfo
	var err error
	switch {
	case rt.Topic != nil:
		t, err = h.lookupTopic(ctx, *rt.Topic, auth.NeedAdmin, false)
		if err == nil && rt.TopicID != ([16]byte{}) {
			if id, _ := h.topicID(ctx, t); id != rt.TopicID {
				return fmt.Errorf("%w: %s has another id", errUnknownTopicID, *rt.Topic)
			}
		}
	case rt.TopicID != [16]byte{}:
		t, err = h.topicByID(ctx, rt.TopicID)
		if err == nil {
			err = h.checkTopic(ctx, t.md.Name, auth.NeedAdmin)
		}
		if err == nil {
			st.Topic = kmsg.StringPtr(t.kafka)
		}
	default:
		return fmt.Errorf("%w: neither topic name nor id", errInvalidRequest)
	}
	if err != nil {
		return err
	}
	if err := h.svc.DeleteTopic(ctx, t.md.Name, true); err != nil {
		return err
	}
	c.log.InfoContext(ctx, "kafka: deleted topic", "topic", t.md.Name.String())
	return nil
}

// topicByID finds a topic of the handler's namespace by Kafka topic id.
func (h *Handler) topicByID(ctx context.Context, id [16]byte) (*topicInfo, error) {
	tenant, ns := h.namespaceOf(ctx)
	mds, err := h.svc.ListTopics(ctx, tenant+"/"+ns)
	if err != nil && !errors.Is(err, broker.ErrNamespaceNotFound) {
		return nil, err
	}
	for _, md := range mds {
		if got, ok := parseTopicID(md.Policies.TopicID); ok && got == id {
			return &topicInfo{kafka: h.kafkaName(ctx, md.Name), md: md, id: id}, nil
		}
	}
	return nil, errUnknownTopicID
}
