package kafka

// IncrementalAlterConfigs (key 44), versions 0-1 (Kafka 2.8's maximum).
//
// SET and DELETE (back to the inherited default) per key on topic configs,
// leaving other keys as they are; APPEND and SUBTRACT apply to list configs
// and kopernik's only list config (cleanup.policy) is fixed, so they are
// INVALID_CONFIG. Same validation and persistence as AlterConfigs.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 1, handleIncrementalAlterConfigs) }

func handleIncrementalAlterConfigs(ctx context.Context, c *conn, req *kmsg.IncrementalAlterConfigsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if rr.ResourceType == kmsg.ConfigResourceTypeGroupConfig {
			err := h.alterShareGroupConfigs(ctx, rr.ResourceName, rr.Configs, req.ValidateOnly) // group_share.go
			sr.ErrorCode, sr.ErrorMessage = errCode(err), errMsg(err)
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		err := h.alterTopicConfigs(ctx, rr.ResourceType, rr.ResourceName, req.ValidateOnly, func(p *broker.Policies) error {
			for _, kv := range rr.Configs {
				var err error
				switch kv.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					if kv.Value == nil {
						err = fmt.Errorf("%w: SET %s without a value", broker.ErrInvalidConfig, kv.Name)
					} else {
						err = setTopicConfig(p, kv.Name, kv.Value)
					}
				case kmsg.IncrementalAlterConfigOpDelete:
					err = setTopicConfig(p, kv.Name, nil)
				default:
					err = fmt.Errorf("%w: operation %d on %s: no list configs are alterable", broker.ErrInvalidConfig, kv.Op, kv.Name)
				}
				if err != nil {
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
