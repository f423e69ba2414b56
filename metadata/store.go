// Package metadata is kopernik's store for small, versioned records: tenants,
// namespaces, topic metadata, ledger lists and cursor snapshots.
//
// Keys are slash-separated paths ("/admin/tenants/public"). Every record has a
// version that starts at 1 when the record is created and grows by one on each
// successful Put. The contract below is written so that it holds for the
// embedded implementations here and for etcd later (roadmap: stateless
// brokers): Put with an expected version is a compare-and-swap, Children lists
// direct children only, Watch reports changes under a prefix.
package metadata

import (
	"context"
	"errors"
)

// Sentinel errors. Implementations wrap them with %w; callers test with errors.Is.
var (
	ErrNotFound    = errors.New("metadata: not found")
	ErrBadVersion  = errors.New("metadata: version mismatch")
	ErrExists      = errors.New("metadata: already exists")
	ErrClosed      = errors.New("metadata: store closed")
	ErrInvalidPath = errors.New("metadata: invalid path")
)

// Version constants for Put and Delete.
const (
	// AnyVersion makes Put and Delete unconditional.
	AnyVersion int64 = -1
	// NotExists makes Put succeed only if the key is absent (create-if-absent).
	NotExists int64 = 0
)

// Record is a value with its version.
type Record struct {
	Value   []byte
	Version int64
}

// EventType says what happened to a key.
type EventType int

const (
	EventPut EventType = iota + 1
	EventDelete
)

// Event is one change delivered by Watch.
type Event struct {
	Type    EventType
	Path    string
	Version int64 // version after a put; the deleted version for a delete
}

// Store is the metadata store contract.
//
// Durability: Put and Delete MUST NOT return nil before the change is on
// stable storage (for durable implementations).
//
// Paths: absolute, '/'-separated, no empty or "." / ".." segments, no trailing
// slash; implementations return ErrInvalidPath otherwise.
type Store interface {
	// Get returns the record at path or ErrNotFound.
	Get(ctx context.Context, path string) (Record, error)
	// Put writes value at path if the current version equals expectedVersion
	// (NotExists: must be absent -> ErrExists; AnyVersion: unconditional;
	// otherwise mismatch -> ErrBadVersion, absent -> ErrNotFound) and returns
	// the new version.
	Put(ctx context.Context, path string, value []byte, expectedVersion int64) (int64, error)
	// Delete removes path if its version equals expectedVersion (or
	// AnyVersion). Missing path: ErrNotFound. Children are not removed.
	Delete(ctx context.Context, path string, expectedVersion int64) error
	// Children returns the sorted names (last path segment) of the direct
	// children of path that hold a record or have descendants holding one.
	Children(ctx context.Context, path string) ([]string, error)
	// Watch delivers events for path and everything below it until ctx is
	// done; the channel is then closed. Events of one key arrive in order.
	// A slow receiver does not block writers: implementations buffer.
	Watch(ctx context.Context, prefix string) (<-chan Event, error)
	// Close releases the store; later calls return ErrClosed.
	Close() error
}
