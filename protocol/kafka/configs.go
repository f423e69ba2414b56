package kafka

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// Topic configs: Kafka's names mapped onto kopernik policies.
//
// Writable and applied (persisted with SetTopicPolicies):
//
//	retention.ms      RetentionTime (-1: forever)
//	retention.bytes   RetentionBytes (-1: unlimited)
//	max.message.bytes MaxMessageBytes (largest batch accepted)
//	segment.bytes     SegmentBytes (ledger roll-over size)
//	segment.ms        SegmentAge (ledger roll-over age)
//	compression.type  CompressionType (Kafka batches recompressed on write;
//	                  producer: as produced)
//	cleanup.policy    CleanupPolicy (delete, compact, compact,delete;
//	                  docs/compaction.md)
//	min.cleanable.dirty.ratio, min.compaction.lag.ms, max.compaction.lag.ms,
//	delete.retention.ms  the compaction policies of the same names
//
// Reported read-only (what kopernik does, not settable):
// message.timestamp.type (CreateTime), min.insync.replicas (1),
// unclean.leader.election.enable (false). Setting one of these to the value
// it already has is accepted, so tools that send defaults keep working; any
// other value, or an unknown name, is INVALID_CONFIG.

// configDef is one topic config.
type configDef struct {
	name string
	typ  kmsg.ConfigType
	// get returns the effective value and whether the topic overrides it.
	get func(eff broker.EffectivePolicies, own broker.Policies) (string, bool)
	// set applies a value (nil: back to the inherited default); nil set
	// means read-only.
	set func(p *broker.Policies, v *string) error
}

var topicConfigs = func() map[string]configDef {
	defs := []configDef{
		{
			name: "retention.ms", typ: kmsg.ConfigTypeLong,
			get: func(e broker.EffectivePolicies, own broker.Policies) (string, bool) {
				return durationMs(e.RetentionTime), own.RetentionTime != nil
			},
			set: func(p *broker.Policies, v *string) error {
				d, err := parseDurationMs(v, true)
				p.RetentionTime = d
				return err
			},
		},
		{
			name: "retention.bytes", typ: kmsg.ConfigTypeLong,
			get: func(e broker.EffectivePolicies, own broker.Policies) (string, bool) {
				if e.RetentionBytes < 0 {
					return "-1", own.RetentionBytes != nil
				}
				return strconv.FormatInt(e.RetentionBytes, 10), own.RetentionBytes != nil
			},
			set: func(p *broker.Policies, v *string) error {
				n, err := parseInt(v, -1, 1<<62)
				if n != nil && *n < 0 {
					*n = -1
				}
				p.RetentionBytes = n
				return err
			},
		},
		{
			name: "max.message.bytes", typ: kmsg.ConfigTypeInt,
			get: func(e broker.EffectivePolicies, own broker.Policies) (string, bool) {
				return strconv.Itoa(int(e.MaxMessageBytes)), own.MaxMessageBytes != nil
			},
			set: func(p *broker.Policies, v *string) error {
				n, err := parseInt(v, 1, 1<<31-1)
				if n != nil {
					p.MaxMessageBytes = ptrTo(int32(*n))
				} else {
					p.MaxMessageBytes = nil
				}
				return err
			},
		},
		{
			name: "segment.bytes", typ: kmsg.ConfigTypeInt,
			get: func(e broker.EffectivePolicies, own broker.Policies) (string, bool) {
				return strconv.FormatInt(e.SegmentBytes, 10), own.SegmentBytes != nil
			},
			set: func(p *broker.Policies, v *string) error {
				n, err := parseInt(v, 1<<10, 1<<31-1)
				p.SegmentBytes = n
				return err
			},
		},
		{
			name: "segment.ms", typ: kmsg.ConfigTypeLong,
			get: func(e broker.EffectivePolicies, own broker.Policies) (string, bool) {
				return durationMs(e.SegmentAge), own.SegmentAge != nil
			},
			set: func(p *broker.Policies, v *string) error {
				d, err := parseDurationMs(v, false)
				p.SegmentAge = d
				return err
			},
		},
		{
			name: "cleanup.policy", typ: kmsg.ConfigTypeList,
			get: func(e broker.EffectivePolicies, own broker.Policies) (string, bool) {
				if e.CleanupPolicy == "" {
					return broker.CleanupDelete, false
				}
				return e.CleanupPolicy, own.CleanupPolicy != nil
			},
			set: func(p *broker.Policies, v *string) error {
				if v == nil {
					p.CleanupPolicy = nil
					return nil
				}
				n, err := broker.NormalizeCleanupPolicy(*v)
				p.CleanupPolicy = &n
				return err
			},
		},
		{
			name: "min.cleanable.dirty.ratio", typ: kmsg.ConfigTypeDouble,
			get: func(e broker.EffectivePolicies, own broker.Policies) (string, bool) {
				return strconv.FormatFloat(e.MinCleanableDirtyRatio, 'g', -1, 64), own.MinCleanableDirtyRatio != nil
			},
			set: func(p *broker.Policies, v *string) error {
				if v == nil {
					p.MinCleanableDirtyRatio = nil
					return nil
				}
				r, err := strconv.ParseFloat(*v, 64)
				if err != nil || r < 0 || r > 1 {
					return fmt.Errorf("%q is not a number in [0, 1]", *v)
				}
				p.MinCleanableDirtyRatio = &r
				return nil
			},
		},
		compactionLagConfig("min.compaction.lag.ms", 0, func(p *broker.Policies) **time.Duration { return &p.MinCompactionLag },
			func(e broker.EffectivePolicies) time.Duration { return e.MinCompactionLag }),
		compactionLagConfig("max.compaction.lag.ms", 1, func(p *broker.Policies) **time.Duration { return &p.MaxCompactionLag },
			func(e broker.EffectivePolicies) time.Duration { return e.MaxCompactionLag }),
		compactionLagConfig("delete.retention.ms", 0, func(p *broker.Policies) **time.Duration { return &p.DeleteRetention },
			func(e broker.EffectivePolicies) time.Duration { return e.DeleteRetention }),
		{
			name: "compression.type", typ: kmsg.ConfigTypeString,
			get: func(e broker.EffectivePolicies, own broker.Policies) (string, bool) {
				if e.CompressionType == "" {
					return "producer", false
				}
				return e.CompressionType, own.CompressionType != nil
			},
			set: func(p *broker.Policies, v *string) error {
				if v != nil && !slices.Contains(broker.CompressionTypes, *v) {
					return fmt.Errorf("%w: compression.type %q must be one of %v", broker.ErrInvalidConfig, *v, broker.CompressionTypes)
				}
				p.CompressionType = v
				return nil
			},
		},
		readOnlyConfig("message.timestamp.type", kmsg.ConfigTypeString, "CreateTime"),
		readOnlyConfig("min.insync.replicas", kmsg.ConfigTypeInt, "1"),
		readOnlyConfig("unclean.leader.election.enable", kmsg.ConfigTypeBoolean, "false"),
	}
	m := make(map[string]configDef, len(defs))
	for _, d := range defs {
		m[d.name] = d
	}
	return m
}()

func readOnlyConfig(name string, typ kmsg.ConfigType, value string) configDef {
	return configDef{name: name, typ: typ, get: func(broker.EffectivePolicies, broker.Policies) (string, bool) { return value, false }}
}

// setTopicConfig applies one Kafka config to p (v nil: reset to default).
func setTopicConfig(p *broker.Policies, name string, v *string) error {
	d, ok := topicConfigs[name]
	if !ok {
		return fmt.Errorf("%w: unknown or unsupported topic config %q (supported: %v)", broker.ErrInvalidConfig, name, configNames())
	}
	if d.set == nil {
		cur, _ := d.get(broker.EffectivePolicies{}, broker.Policies{})
		if v == nil || *v == cur {
			return nil
		}
		return fmt.Errorf("%w: %s is fixed at %q in kopernik", broker.ErrInvalidConfig, name, cur)
	}
	if err := d.set(p, v); err != nil {
		return fmt.Errorf("%w: %s: %w", broker.ErrInvalidConfig, name, err)
	}
	return nil
}

func configNames() []string {
	out := make([]string, 0, len(topicConfigs))
	for n := range topicConfigs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// policiesFromConfigs builds a new topic's policies from CreateTopics configs.
func policiesFromConfigs(cfgs []kmsg.CreateTopicsRequestTopicConfig) (broker.Policies, error) {
	var p broker.Policies
	for _, c := range cfgs {
		if err := setTopicConfig(&p, c.Name, c.Value); err != nil {
			return p, err
		}
	}
	return p, p.Validate()
}

// describedConfig is one config as reported.
type describedConfig struct {
	name, value string
	typ         kmsg.ConfigType
	readOnly    bool
	topicLevel  bool // set on the topic itself
}

// describeTopicConfigs lists a topic's configs sorted by name; names
// filters them (empty: all).
func describeTopicConfigs(md broker.TopicMetadata, names []string) []describedConfig {
	var out []describedConfig
	add := func(d configDef) {
		v, own := d.get(md.Effective, md.Policies)
		out = append(out, describedConfig{name: d.name, value: v, typ: d.typ, readOnly: d.set == nil, topicLevel: own})
	}
	if len(names) == 0 {
		for _, n := range configNames() {
			add(topicConfigs[n])
		}
		return out
	}
	for _, n := range names {
		if d, ok := topicConfigs[n]; ok {
			add(d)
		}
	}
	return out
}

func durationMs(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

func parseDurationMs(v *string, allowForever bool) (*time.Duration, error) {
	if v == nil {
		return nil, nil
	}
	n, err := strconv.ParseInt(*v, 10, 64)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q is not an integer", *v)
	case n < 0 && allowForever:
		d := time.Duration(-1)
		return &d, nil
	case n <= 0, n > int64(time.Duration(1<<63-1)/time.Millisecond):
		return nil, fmt.Errorf("%d out of range", n)
	}
	d := time.Duration(n) * time.Millisecond
	return &d, nil
}

func parseInt(v *string, min, max int64) (*int64, error) {
	if v == nil {
		return nil, nil
	}
	n, err := strconv.ParseInt(*v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not an integer", *v)
	}
	if n < min || n > max {
		return nil, fmt.Errorf("%d not in [%d, %d]", n, min, max)
	}
	return &n, nil
}

func ptrTo[T any](v T) *T { return &v }

// clonePolicies deep-copies p's Extra so edits do not alias.
func clonePolicies(p broker.Policies) broker.Policies {
	p.Extra = maps.Clone(p.Extra)
	return p
}

// compactionLagConfig is a duration config in milliseconds >= minMs
// (Long.MAX_VALUE reads back for "never").
func compactionLagConfig(name string, minMs int64, field func(*broker.Policies) **time.Duration, eff func(broker.EffectivePolicies) time.Duration) configDef {
	return configDef{
		name: name, typ: kmsg.ConfigTypeLong,
		get: func(e broker.EffectivePolicies, own broker.Policies) (string, bool) {
			d := eff(e)
			if d == time.Duration(math.MaxInt64) {
				return strconv.FormatInt(math.MaxInt64, 10), *field(&own) != nil
			}
			return strconv.FormatInt(d.Milliseconds(), 10), *field(&own) != nil
		},
		set: func(p *broker.Policies, v *string) error {
			if v == nil {
				*field(p) = nil
				return nil
			}
			n, err := parseInt(v, minMs, math.MaxInt64)
			if err != nil {
				return err
			}
			d := time.Duration(math.MaxInt64)
			if *n < int64(math.MaxInt64/time.Millisecond) {
				d = time.Duration(*n) * time.Millisecond
			}
			*field(p) = &d
			return nil
		},
	}
}
