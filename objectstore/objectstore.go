// Package objectstore is the narrow object-storage interface tiered storage
// needs (Put, ranged Get, Head, Delete, List by prefix) and its S3
// implementation (AWS SDK v2; any S3 API: AWS S3, Ceph RGW, SeaweedFS,
// versitygw, MinIO, R2, GCS in S3 mode).
//
// Errors: ErrNotFound for a missing object; ErrUnavailable (retriable)
// when the store is down, slow or throttling (HTTP 5xx, 429, SlowDown,
// connection errors, timeouts) after the client's own retries with
// backoff; anything else is a request the store refused (credentials, a
// missing bucket) and will not succeed by retrying.
package objectstore

import (
	"context"
	"errors"
)

// Store is an object store. Implementations are safe for concurrent use.
type Store interface {
	// Put writes the object key with data, replacing any object of that
	// key. It MUST NOT return nil before the whole object is stored: a
	// later Head sees its full size.
	Put(ctx context.Context, key string, data []byte) error
	// Get returns n bytes of key from offset off (n < 0: to the end). A
	// range past the end returns what exists; an object shorter than off
	// is an error.
	Get(ctx context.Context, key string, off, n int64) ([]byte, error)
	// Head returns the object's size and ETag without its data.
	Head(ctx context.Context, key string) (Info, error)
	// Delete removes key; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List returns every object whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// Info describes one object.
type Info struct {
	Key  string
	Size int64
	// ETag as the store reports it, without quotes: for a single-part PUT
	// to S3 (and the stores mirroring it) the hex MD5 of the data.
	ETag string
}

var (
	// ErrNotFound: no such object.
	ErrNotFound = errors.New("objectstore: not found")
	// ErrUnavailable: the store is down, slow or throttling; retrying later
	// may succeed.
	ErrUnavailable = errors.New("objectstore: unavailable")
)

// Retriable reports whether err is worth retrying later (ErrUnavailable).
func Retriable(err error) bool { return errors.Is(err, ErrUnavailable) }
