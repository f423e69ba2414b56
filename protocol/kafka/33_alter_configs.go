package kafka

// AlterConfigs (key 33), versions 0-2 (Kafka 2.8's maximum).
//
// Replaces a topic's whole config: the given keys are set, every other
// writable key returns to its inherited default. The new policies are
// validated and persisted with SetTopicPolicies (so they apply at once to
// loaded partitions). Unknown keys and values outside a config's range are
// INVALID_CONFIG with the reason; validate_only stores nothing. Broker
// configs are not alterable.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 2, handleAlterConfigs) }

func handleAlterConfigs(ctx context.Context, c *conn, req *kmsg.AlterConfigsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		err := h.alterTopicConfigs(ctx, rr.ResourceType, rr.ResourceName, req.ValidateOnly, func(p *broker.Policies) error {
			// Only Kafka's writable keys reset; policies set through other
			// APIs (subscription creation, ...) are not Kafka's to clear.
			for _, n := range configNames() {
				if topicConfigs[n].set != nil {
					topicConfigs[n].set(p, nil)
				}
			}
			for _, kv := range rr.Configs {
				if err := setTopicConfig(p, kv.Name, kv.Value); err != nil {
					return err
				}
			}
			return nil
		})
		sr.ErrorCode, sr.ErrorMessage = c.alterOutcome(ctx, rr.ResourceName, req.ValidateOnly, err)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// alterOutcome is a resource's answer to an alter request: the error's
// code and message, or success, logging a change made.
func (c *conn) alterOutcome(ctx context.Context, topic string, validateOnly bool, err error) (int16, *string) {
	if err != nil {
		return errCode(err), errMsg(err)
	}
	if !validateOnly {
		c.log.InfoContext(ctx, "kafka: altered topic configs", "kafka_topic", topic)
	}
	return 0, nil
}

// alterTopicConfigs applies edit to a topic's own policies and stores them
// (or only validates them).
func (h *Handler) alterTopicConfigs(ctx context.Context, typ kmsg.ConfigResourceType, name string, validateOnly bool, edit func(p *broker.Policies) error) error {
	if typ != kmsg.ConfigResourceTypeTopic {
		return fmt.Errorf("%w: only topic configs can be altered (resource type %d)", errUnsupportedConfig, typ)
	}
	t, err := h.lookupTopic(ctx, name, auth.NeedAdmin, false)
	if err != nil {
		return err
	}
	if validateOnly {
		p := clonePolicies(t.md.Policies)
		if err := edit(&p); err != nil {
			return err
		}
		return p.Validate()
	}
	return h.svc.UpdateTopicPolicies(ctx, t.md.Name, edit) // validates
}
