package broker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/kopernik-io/kopernik/metadata"
)

// StateStore keeps small opaque records for protocol handlers: state that is
// theirs (a Kafka consumer group's membership and generation) but must
// survive a broker restart and, later, move with the broker's metadata.
// *Broker implements it; handlers type-assert their Service to it.
//
// Records are grouped by kind (a handler-chosen namespace such as
// "kafka-group") and named by key; both are arbitrary non-empty strings.
// PutState and DeleteState return once the change is durable (the metadata
// store's contract). Values are expected to be small (kilobytes): they are
// written whole on every change.
type StateStore interface {
	// GetState returns the record kind/key or ErrStateNotFound.
	GetState(ctx context.Context, kind, key string) ([]byte, error)
	// PutState writes the record kind/key unconditionally.
	PutState(ctx context.Context, kind, key string, value []byte) error
	// DeleteState removes the record kind/key; removing a missing record is
	// not an error.
	DeleteState(ctx context.Context, kind, key string) error
	// ListState returns the keys of kind, sorted by their escaped form.
	ListState(ctx context.Context, kind string) ([]string, error)
}

// ErrStateNotFound is GetState's answer for a missing record.
var ErrStateNotFound = errors.New("broker: state not found")

var _ StateStore = (*Broker)(nil)

// Metadata layout of protocol state:
//
//	/protocol-state/<escaped kind>/<escaped key>    opaque bytes
//
// Escaping keeps any string one path segment: "s" + url.PathEscape(s), so
// that '/' never splits a key and "." or ".." can never be a segment.
const pathProtocolState = "/protocol-state"

func escapeStateSegment(s string) string { return "s" + url.PathEscape(s) }

func unescapeStateSegment(seg string) (string, bool) {
	if !strings.HasPrefix(seg, "s") {
		return "", false
	}
	s, err := url.PathUnescape(seg[1:])
	return s, err == nil
}

func statePath(kind, key string) (string, error) {
	if kind == "" || key == "" {
		return "", fmt.Errorf("%w: empty state kind or key", ErrInvalidName)
	}
	return metadata.Join(pathProtocolState[1:], escapeStateSegment(kind), escapeStateSegment(key)), nil
}

// GetState implements StateStore.
func (b *Broker) GetState(ctx context.Context, kind, key string) ([]byte, error) {
	p, err := statePath(kind, key)
	if err != nil {
		return nil, err
	}
	rec, err := b.store.Get(ctx, p)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s/%s", ErrStateNotFound, kind, key)
	}
	if err != nil {
		return nil, err
	}
	return rec.Value, nil
}

// PutState implements StateStore.
func (b *Broker) PutState(ctx context.Context, kind, key string, value []byte) error {
	p, err := statePath(kind, key)
	if err != nil {
		return err
	}
	_, err = b.store.Put(ctx, p, value, metadata.AnyVersion)
	return err
}

// PutStateFenced writes the record kind/key only if fence (Cluster.Fence)
// still holds, in one etcd transaction with the write: a broker that lost
// the unit the record belongs to (its lease expired while it was paused
// between its lease check and this write) cannot overwrite what the new
// owner wrote. A failed fence is an error wrapping ErrUnitFenced and
// nothing is written. A store without transactions (standalone) writes
// unconditionally: there is no other writer to fence.
func (b *Broker) PutStateFenced(ctx context.Context, fence Fence, kind, key string, value []byte) error {
	p, err := statePath(kind, key)
	if err != nil {
		return err
	}
	tx, ok := b.store.(metadata.Transactor)
	if !ok {
		_, err = b.store.Put(ctx, p, value, metadata.AnyVersion)
		return err
	}
	err = tx.Txn(ctx, []metadata.Cond{fence}, []metadata.Op{{Path: p, Value: value}})
	var failed *metadata.TxnFailedError
	if errors.As(err, &failed) {
		return fmt.Errorf("%w: %s/%s: %w", ErrUnitFenced, kind, key, err)
	}
	return err
}

// DeleteState implements StateStore.
func (b *Broker) DeleteState(ctx context.Context, kind, key string) error {
	p, err := statePath(kind, key)
	if err != nil {
		return err
	}
	if err := b.store.Delete(ctx, p, metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return err
	}
	return nil
}

// ListState implements StateStore.
func (b *Broker) ListState(ctx context.Context, kind string) ([]string, error) {
	if kind == "" {
		return nil, fmt.Errorf("%w: empty state kind", ErrInvalidName)
	}
	names, err := b.store.Children(ctx, metadata.Join(pathProtocolState[1:], escapeStateSegment(kind)))
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(names))
	for _, n := range names {
		if k, ok := unescapeStateSegment(n); ok {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
