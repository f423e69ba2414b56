package broker

import (
	"fmt"
	"maps"

	"github.com/kopernik-io/kopernik/managedledger"
)

// Validate rejects values no topic could use.
func (p Policies) Validate() error {
	var errs []string
	if p.MaxMessageBytes != nil && *p.MaxMessageBytes <= 0 {
		errs = append(errs, fmt.Sprintf("maxMessageBytes %d must be > 0", *p.MaxMessageBytes))
	}
	if p.SegmentBytes != nil && *p.SegmentBytes < 1<<10 {
		errs = append(errs, fmt.Sprintf("segmentBytes %d must be >= 1024", *p.SegmentBytes))
	}
	if p.SegmentAge != nil && *p.SegmentAge <= 0 {
		errs = append(errs, fmt.Sprintf("segmentAge %s must be > 0", *p.SegmentAge))
	}
	if p.AutoTopicPartitions != nil && *p.AutoTopicPartitions < 0 {
		errs = append(errs, fmt.Sprintf("autoTopicPartitions %d must be >= 0", *p.AutoTopicPartitions))
	}
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
	if p.BacklogQuota != nil {
		q := *p.BacklogQuota
		e.BacklogQuota = &q
	}
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
	return managedledger.Config{
		Sync:           b.sync.Sync,
		SyncInterval:   b.sync.SyncInterval,
		MaxLedgerBytes: e.SegmentBytes,
		MaxLedgerAge:   e.SegmentAge,
		RetentionTime:  e.RetentionTime,
		RetentionBytes: e.RetentionBytes,
	}
}
