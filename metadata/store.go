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
// Implementations: Memory (tests, ephemeral brokers), Bolt (one bbolt
// file, durable, group commit) and Etcd (an etcd v3 cluster, shared by
// brokers). TestStoreContract runs one table of cases
// over every implementation; a new backend must pass it.
//
// # Mapping to etcd
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
//     from the previous record, WithPrevKV, for an unconditional Put).
//   - Children(p) is a keys-only range over [p+"/", p+"0") (the byte after
//     '/'), cutting each key at its next '/'. Large subtrees can keep an
//     index key per child; the contract does not say how children are found.
//   - Watch(prefix) is one etcd watch on the range [prefix, prefix+"0"),
//     filtered to prefix and the keys below it (one watch keeps the events
//     of the key and its subtree in one revision order), with the previous
//     record for a delete's version. A broken watch resumes from the last
//     revision delivered; a compacted one yields EventReset.
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
	// ErrUnavailable: a networked store (etcd) did not answer in time; the
	// operation may or may not have taken effect.
	ErrUnavailable = errors.New("metadata: store unavailable")
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
	// EventReset says events under Path (the watched prefix) may have been
	// lost (etcd compacted the history a broken watch had to resume from):
	// the receiver must re-read everything it caches under Path.
	EventReset
)

// Event is one change delivered by Watch.
type Event struct {
	Type    EventType
	Path    string
	Version int64 // version after a put; the deleted version for a delete
}

// HealthChecker is implemented by stores that can lose their connection
// (Etcd): Healthy returns nil while the store answers, else why not
// (wrapping ErrUnavailable). Stores without it are always healthy.
type HealthChecker interface {
	Healthy(ctx context.Context) error
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
	// A backend that can lose events (etcd after a compaction) says so with
	// one EventReset for the prefix and goes on; Memory and Bolt never do.
	Watch(ctx context.Context, prefix string) (<-chan Event, error)
	// Close releases the store; later calls return ErrClosed.
	Close() error
}
