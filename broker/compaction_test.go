package broker

import (
	"math"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
)

// TestCompactionPlan: what a pass compacts and when, per Kafka's
// definitions of the policies.
func TestCompactionPlan(t *testing.T) {
	now := time.UnixMilli(10_000_000)
	ms := func(d time.Duration) int64 { return now.Add(-d).UnixMilli() }
	// Three sealed ledgers of 1000 bytes (written 3h, 2h, 1h ago) and the active one.
	st := managedledger.Stats{FirstIndex: 0, NextIndex: 40, Ledgers: []managedledger.LedgerInfo{
		{FirstIndex: 0, Bytes: 1000, Sealed: true, MaxTimestamp: ms(3 * time.Hour)},
		{FirstIndex: 10, Bytes: 1000, Sealed: true, MaxTimestamp: ms(2 * time.Hour)},
		{FirstIndex: 20, Bytes: 1000, Sealed: true, MaxTimestamp: ms(time.Hour)},
		{FirstIndex: 30, Bytes: 500},
	}}
	base := DefaultPolicies()
	base.CleanupPolicy = CleanupCompact
	with := func(f func(*EffectivePolicies)) EffectivePolicies { e := base; f(&e); return e }
	cases := []struct {
		name  string
		info  compact.Info
		e     EffectivePolicies
		force bool
		upTo  int64
		due   bool
	}{
		{"first compaction: all dirty", compact.Info{}, base, false, 30, true},
		{"never the active ledger", compact.Info{Cleaned: 30, Bytes: 100}, base, false, 30, false},
		{"force takes everything", compact.Info{Cleaned: 30, Bytes: 100}, base, true, 40, true},
		{"ratio below the minimum", compact.Info{Cleaned: 20, Bytes: 2000}, base, false, 30, false},
		{"ratio reached", compact.Info{Cleaned: 20, Bytes: 900}, base, false, 30, true},
		{"min.compaction.lag holds back young ledgers", compact.Info{}, with(func(e *EffectivePolicies) { e.MinCompactionLag = 90 * time.Minute }), false, 20, true},
		{"min.compaction.lag holds back all", compact.Info{}, with(func(e *EffectivePolicies) { e.MinCompactionLag = 4 * time.Hour }), false, 0, false},
		{"max.compaction.lag forces a low ratio", compact.Info{Cleaned: 20, Bytes: 100_000}, with(func(e *EffectivePolicies) { e.MaxCompactionLag = 30 * time.Minute }), false, 30, true},
		{"max.compaction.lag not reached", compact.Info{Cleaned: 20, Bytes: 100_000}, with(func(e *EffectivePolicies) { e.MaxCompactionLag = 2 * time.Hour }), false, 30, false},
		{"delete policy, no threshold: never", compact.Info{}, with(func(e *EffectivePolicies) { e.CleanupPolicy = CleanupDelete }), false, 30, false},
		{"Pulsar threshold reached", compact.Info{Cleaned: 10, Bytes: 1}, with(func(e *EffectivePolicies) { e.CleanupPolicy = CleanupDelete; e.CompactionThreshold = 2000 }), false, 30, true},
		{"Pulsar threshold not reached", compact.Info{Cleaned: 20, Bytes: 1}, with(func(e *EffectivePolicies) { e.CleanupPolicy = CleanupDelete; e.CompactionThreshold = 2000 }), false, 30, false},
	}
	for _, c := range cases {
		upTo, due := compactionPlan(st, c.info, c.e, now, c.force)
		if upTo != c.upTo || due != c.due {
			t.Errorf("%s: upTo %d due %v, want %d %v", c.name, upTo, due, c.upTo, c.due)
		}
	}
	if base.MaxCompactionLag != time.Duration(math.MaxInt64) {
		t.Errorf("default max.compaction.lag %v", base.MaxCompactionLag)
	}
}

func TestNormalizeCleanupPolicy(t *testing.T) {
	for in, want := range map[string]string{"delete": "delete", "compact": "compact", "compact,delete": "compact,delete", "Delete, Compact": "compact,delete"} {
		if got, err := NormalizeCleanupPolicy(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "compact,", "remove"} {
		if _, err := NormalizeCleanupPolicy(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
