package kafka

// DescribeConfigs (key 32), versions 0-4 (Kafka 2.8's maximum).
//
// Topics report the configs of configs.go: effective values, with source
// DYNAMIC_TOPIC_CONFIG when the topic overrides the value and DEFAULT_CONFIG
// otherwise (synonyms are not reported). The broker resource (this node's id
// or "") reports a few read-only broker settings, the broker-wide topic
// defaults among them (compression.type, log.cleanup.policy and the
// log.cleaner.* compaction defaults). Other resource types are
// INVALID_REQUEST.

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 4, handleDescribeConfigs) }

func handleDescribeConfigs(ctx context.Context, c *conn, req *kmsg.DescribeConfigsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var cfgs []describedConfig
		var err error
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			var t *topicInfo
			if t, err = h.lookupTopic(ctx, rr.ResourceName, auth.NeedLookup, false); err == nil {
				cfgs = describeTopicConfigs(t.md, rr.ConfigNames)
			}
		case kmsg.ConfigResourceTypeBroker:
			cfgs, err = h.describeBrokerConfigs(rr.ResourceName, rr.ConfigNames)
		case kmsg.ConfigResourceTypeGroupConfig:
			cfgs, err = h.describeShareGroupConfigs(ctx, rr.ResourceName, rr.ConfigNames) // group_share.go
		default:
			err = fmt.Errorf("%w: config resource type %d", errUnsupportedConfig, rr.ResourceType)
		}
		if err != nil {
			sr.ErrorCode, sr.ErrorMessage = errCode(err), errMsg(err)
		}
		for _, d := range cfgs {
			rc := kmsg.NewDescribeConfigsResponseResourceConfig()
			rc.Name, rc.Value, rc.ReadOnly = d.name, kmsg.StringPtr(d.value), d.readOnly
			if rr.ResourceType == kmsg.ConfigResourceTypeBroker {
				rc.Source = kmsg.ConfigSourceStaticBrokerConfig
			} else if rr.ResourceType == kmsg.ConfigResourceTypeGroupConfig && d.topicLevel {
				rc.Source = kmsg.ConfigSourceGroupConfig
			} else {
				rc.Source = configSource(d)
			}
			rc.IsDefault = rc.Source == kmsg.ConfigSourceDefaultConfig
			rc.ConfigType = d.typ
			sr.Configs = append(sr.Configs, rc)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// describeBrokerConfigs reports the handler settings Kafka tools look for.
func (h *Handler) describeBrokerConfigs(name string, names []string) ([]describedConfig, error) {
	if name != "" && name != strconv.Itoa(int(h.cfg.NodeID)) {
		return nil, fmt.Errorf("%w: broker %q is not this node (%d)", errInvalidRequest, name, h.cfg.NodeID)
	}
	all := []describedConfig{
		{name: "auto.create.topics.enable", value: strconv.FormatBool(h.cfg.AutoCreateTopics), typ: kmsg.ConfigTypeBoolean},
		{name: "broker.id", value: strconv.Itoa(int(h.cfg.NodeID)), typ: kmsg.ConfigTypeInt},
		{name: "default.replication.factor", value: "1", typ: kmsg.ConfigTypeShort},
		{name: "num.partitions", value: strconv.Itoa(h.cfg.DefaultPartitions), typ: kmsg.ConfigTypeInt},
		{name: "socket.request.max.bytes", value: strconv.Itoa(h.cfg.MaxRequestBytes), typ: kmsg.ConfigTypeInt},
		{name: "connections.max.idle.ms", value: strconv.FormatInt(h.cfg.IdleTimeout.Milliseconds(), 10), typ: kmsg.ConfigTypeLong},
	}
	// The broker-wide topic defaults (Kafka's log.* names for them).
	d := h.svc.Defaults()
	cleanup := d.CleanupPolicy
	if cleanup == "" {
		cleanup = broker.CleanupDelete
	}
	all = append(all,
		describedConfig{name: "compression.type", value: d.CompressionType, typ: kmsg.ConfigTypeString},
		describedConfig{name: "log.cleanup.policy", value: cleanup, typ: kmsg.ConfigTypeList},
		describedConfig{name: "log.cleaner.min.cleanable.ratio", value: strconv.FormatFloat(d.MinCleanableDirtyRatio, 'g', -1, 64), typ: kmsg.ConfigTypeDouble},
		describedConfig{name: "log.cleaner.min.compaction.lag.ms", value: strconv.FormatInt(d.MinCompactionLag.Milliseconds(), 10), typ: kmsg.ConfigTypeLong},
		describedConfig{name: "log.cleaner.max.compaction.lag.ms", value: lagMs(d.MaxCompactionLag), typ: kmsg.ConfigTypeLong},
		describedConfig{name: "log.cleaner.delete.retention.ms", value: strconv.FormatInt(d.DeleteRetention.Milliseconds(), 10), typ: kmsg.ConfigTypeLong},
	)
	var out []describedConfig
	for _, d := range all {
		d.readOnly = true
		if len(names) == 0 {
			out = append(out, d)
			continue
		}
		for _, n := range names {
			if n == d.name {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// lagMs is a compaction lag in milliseconds, "never" as Long.MAX_VALUE.
func lagMs(d time.Duration) string {
	if d == time.Duration(math.MaxInt64) {
		return strconv.FormatInt(math.MaxInt64, 10)
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}
