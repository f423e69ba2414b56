package broker

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
)

// CompressionTypes are the values of Policies.CompressionType (Kafka's
// compression.type).
var CompressionTypes = []string{"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"}

// Validate rejects values no topic could use.
func (p Policies) Validate() error {
	var errs []string
	if p.MaxMessageBytes != nil && *p.MaxMessageBytes <= 0 {
		errs = append(errs, fmt.Sprintf("maxMessageBytes %d must be > 0", *p.MaxMessageBytes))
	}
	if p.CompressionType != nil && !slices.Contains(CompressionTypes, *p.CompressionType) {
		errs = append(errs, fmt.Sprintf("compressionType %q must be one of %v", *p.CompressionType, CompressionTypes))
	}
	if p.SegmentBytes != nil && *p.SegmentBytes < 1<<10 {
		errs = append(errs, fmt.Sprintf("segmentBytes %d must be >= 1024", *p.SegmentBytes))
	}
	if p.SegmentAge != nil && *p.SegmentAge <= 0 {
		errs = append(errs, fmt.Sprintf("segmentAge %s must be > 0", *p.SegmentAge))
	}
	if p.OffloadThresholdBytes != nil && *p.OffloadThresholdBytes < -1 {
		errs = append(errs, fmt.Sprintf("offloadThresholdBytes %d must be >= -1", *p.OffloadThresholdBytes))
	}
	if p.OffloadThresholdSeconds != nil && *p.OffloadThresholdSeconds < -1 {
		errs = append(errs, fmt.Sprintf("offloadThresholdSeconds %d must be >= -1", *p.OffloadThresholdSeconds))
	}
	if p.OffloadDeletionLag != nil && *p.OffloadDeletionLag < 0 {
		errs = append(errs, fmt.Sprintf("offloadDeletionLag %s must be >= 0", *p.OffloadDeletionLag))
	}
	if p.OffloadReadPriority != nil && *p.OffloadReadPriority != ReadTieredFirst && *p.OffloadReadPriority != ReadLocalFirst {
		errs = append(errs, fmt.Sprintf("offloadReadPriority %q must be %s or %s", *p.OffloadReadPriority, ReadTieredFirst, ReadLocalFirst))
	}
	if p.AutoTopicPartitions != nil && *p.AutoTopicPartitions < 0 {
		errs = append(errs, fmt.Sprintf("autoTopicPartitions %d must be >= 0", *p.AutoTopicPartitions))
	}
	errs = append(errs, p.validateCompaction()...)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, errs)
	}
	return nil
}

// resolve applies overrides p on top of e.
func (e EffectivePolicies) resolve(p Policies) EffectivePolicies {
	if p.RetentionTime != nil {
		e.RetentionTime = *p.RetentionTime
	}
	if p.RetentionBytes != nil {
		e.RetentionBytes = *p.RetentionBytes
	}
	if p.MaxMessageBytes != nil {
		e.MaxMessageBytes = *p.MaxMessageBytes
	}
	if p.CompressionType != nil {
		e.CompressionType = *p.CompressionType
	}
	if p.SegmentBytes != nil {
		e.SegmentBytes = *p.SegmentBytes
	}
	if p.SegmentAge != nil {
		e.SegmentAge = *p.SegmentAge
	}
	if p.AutoTopicCreation != nil {
		e.AutoTopicCreation = *p.AutoTopicCreation
	}
	if p.AutoTopicPartitions != nil {
		e.AutoTopicPartitions = *p.AutoTopicPartitions
	}
	if p.AutoSubscriptionCreation != nil {
		e.AutoSubscriptionCreation = *p.AutoSubscriptionCreation
	}
	if p.OffloadThresholdBytes != nil {
		e.OffloadThresholdBytes = *p.OffloadThresholdBytes
	}
	if p.OffloadThresholdSeconds != nil {
		e.OffloadThresholdSeconds = *p.OffloadThresholdSeconds
	}
	if p.OffloadDeletionLag != nil {
		e.OffloadDeletionLag = *p.OffloadDeletionLag
	}
	if p.OffloadReadPriority != nil {
		e.OffloadReadPriority = *p.OffloadReadPriority
	}
	if p.BacklogQuota != nil {
		q := *p.BacklogQuota
		e.BacklogQuota = &q
	}
	e = e.resolveCompaction(p)
	e.Terminated = e.Terminated || p.Terminated
	if len(p.Extra) > 0 {
		merged := maps.Clone(e.Extra)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, p.Extra)
		e.Extra = merged
	}
	return e
}

func (b *Broker) ledgerConfig(e EffectivePolicies) managedledger.Config {
	cfg := managedledger.Config{
		Sync:           b.sync.Sync,
		SyncInterval:   b.sync.SyncInterval,
		MaxLedgerBytes: e.SegmentBytes,
		MaxLedgerAge:   e.SegmentAge,
		RetentionTime:  e.RetentionTime,
		RetentionBytes: e.RetentionBytes,
		Offload:        offloadPolicy(e),
	}
	if e.CleanupPolicy == CleanupCompact {
		// Kafka: a compact-only topic keeps its (compacted) data forever.
		cfg.RetentionTime, cfg.RetentionBytes = -1, -1
		cfg.ReleasedEntries = true // compaction alone removes ledgers
	}
	return cfg
}

// offloadPolicy maps the Pulsar-style offload policies to the storage's.
func offloadPolicy(e EffectivePolicies) managedledger.OffloadPolicy {
	p := managedledger.OffloadPolicy{
		Auto:           e.OffloadThresholdBytes >= 0 || e.OffloadThresholdSeconds >= 0,
		ThresholdBytes: e.OffloadThresholdBytes,
		ThresholdAge:   -1,
		DeletionLag:    e.OffloadDeletionLag,
	}
	if e.OffloadThresholdSeconds >= 0 {
		p.ThresholdAge = time.Duration(e.OffloadThresholdSeconds) * time.Second
	}
	if e.OffloadReadPriority == ReadLocalFirst {
		p.ReadPriority = managedledger.LocalFirst
	}
	return p
}
