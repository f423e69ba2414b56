package ownership

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
)

// watch keeps the member's view of brokers/ and owners/ current: one store
// watch on the cluster's root, opened before the first full read so that no
// change between the read and the watch is missed. Events carry no values,
// so a put is answered by reading the record (which also makes a late
// event converge on the current value); a reset re-reads everything.
func (m *Member) watch(ctx context.Context) {
	defer m.wg.Done()
	for ctx.Err() == nil {
		events, err := m.store.Watch(ctx, m.root)
		if errors.Is(err, metadata.ErrClosed) {
			return // the broker is shutting down (or was killed, in tests)
		}
		if err != nil {
			m.log.Warn("cluster view: watch failed; retrying", "err", err)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		if err := m.reload(ctx); errors.Is(err, metadata.ErrClosed) {
			return
		} else if err != nil {
			m.log.Warn("cluster view: reload failed; retrying", "err", err)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		select {
		case <-m.ready:
		default:
			close(m.ready)
		}
		for ev := range events {
			if ev.Type == metadata.EventReset {
				if err := m.reload(ctx); err != nil {
					m.log.Warn("cluster view: reload after reset failed", "err", err)
				}
				continue
			}
			m.apply(ctx, ev)
		}
	}
}

// reload replaces the view with a full read.
func (m *Member) reload(ctx context.Context) error {
	brokers := map[int32]BrokerInfo{}
	ids, err := m.store.Children(ctx, m.root+"/brokers")
	if err != nil {
		return err
	}
	for _, id := range ids {
		rec, err := m.store.Get(ctx, m.root+"/brokers/"+id)
		if errors.Is(err, metadata.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		var b BrokerInfo
		if json.Unmarshal(rec.Value, &b) == nil {
			brokers[b.NodeID] = b
		}
	}
	owners := map[string]ownerEntry{}
	segs, err := m.store.Children(ctx, m.root+"/owners")
	if err != nil {
		return err
	}
	for _, seg := range segs {
		unit, ok := unescape(seg)
		if !ok {
			continue
		}
		rec, err := m.store.Get(ctx, m.root+"/owners/"+seg)
		if errors.Is(err, metadata.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		var o Owner
		if json.Unmarshal(rec.Value, &o) == nil {
			owners[unit] = ownerEntry{Owner: o, version: rec.Version}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.brokers, m.mu.owners = brokers, owners
	m.mu.counts = map[int32]int{}
	for _, o := range owners {
		m.mu.counts[o.NodeID]++
	}
	m.notifyLocked()
	return nil
}

// apply folds one event into the view.
func (m *Member) apply(ctx context.Context, ev metadata.Event) {
	rest, ok := strings.CutPrefix(ev.Path, m.root+"/")
	if !ok {
		return
	}
	kind, seg, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(seg, "/") {
		return
	}
	var rec metadata.Record
	present := false
	if ev.Type == metadata.EventPut {
		r, err := m.store.Get(ctx, ev.Path)
		switch {
		case err == nil:
			rec, present = r, true
		case errors.Is(err, metadata.ErrNotFound):
		default:
			// Unreadable now: a full reload puts the view right.
			m.log.Warn("cluster view: read failed; reloading", "path", ev.Path, "err", err)
			if err := m.reload(ctx); err != nil {
				m.log.Warn("cluster view: reload failed", "err", err)
			}
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch kind {
	case "brokers":
		id, err := strconv.Atoi(seg)
		if err != nil {
			return
		}
		var b BrokerInfo
		if present && json.Unmarshal(rec.Value, &b) == nil {
			m.mu.brokers[b.NodeID] = b
		} else {
			delete(m.mu.brokers, int32(id))
		}
	case "owners":
		unit, ok := unescape(seg)
		if !ok {
			return
		}
		if old, had := m.mu.owners[unit]; had {
			m.mu.counts[old.NodeID]--
			delete(m.mu.owners, unit)
		}
		var o Owner
		if present && json.Unmarshal(rec.Value, &o) == nil {
			m.mu.owners[unit] = ownerEntry{Owner: o, version: rec.Version}
			m.mu.counts[o.NodeID]++
		}
	default:
		return
	}
	m.notifyLocked()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
