// Package metadata is kopernik's store for small, versioned records: tenants,
// namespaces, topic metadata, ledger lists and cursor snapshots.
//
// Keys are slash-separated paths ("/admin/tenants/public"). Every record has a
// version that starts at 1 when the record is created and grows by one on each
// successful Put. The contract below is written so that it holds for the
// embedded implementations here and for etcd later (roadmap: stateless
// brokers): Put with an expected version is a compare-and-swap, Children lists
// direct children only, Watch reports changes under a prefix.
//
// Implementations: Memory (tests, ephemeral brokers) and Bolt (one bbolt
// file, durable, group commit). TestStoreContract runs one table of cases
// over every implementation; a new backend must pass it.
//
// # Mapping to etcd (roadmap)
//
// The contract is chosen so that an etcd v3 backend is a thin translation:
//
//   - Record.Version is etcd's per-key KeyValue.Version: 1 on create, +1 on
//     every put, and it starts over after a delete, as here.
//   - Put(p, v, NotExists) is Txn(If(CreateRevision(p) == 0), Then(Put));
//     Put(p, v, n) is Txn(If(Version(p) == n), Then(Put)), with a failed
//     compare told apart (absent vs mismatch) by a Get in the Else branch;
//     AnyVersion is a plain Put. Delete with a version is the same Txn
//     with a DeleteRange. The new version is the old one + 1 (or read back
//     from the response header's revision with a Get at that revision).
//   - Children(p) is a keys-only range over [p+"/", p+"0") (the byte after
//     '/'), cutting each key at its next '/'. Large subtrees can keep an
//     index key per child; the contract does not say how children are found.
//   - Watch(prefix) is an etcd watch on the key itself plus the range
//     prefix+"/"; etcd delivers one key's events in revision order.
//   - Durability: etcd acknowledges after a quorum has fsynced the raft log.
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
