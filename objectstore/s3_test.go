package objectstore_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
)

func newStore(t testing.TB, srv *s3test.Server, attempts int) *objectstore.S3 {
	t.Helper()
	st, err := objectstore.NewS3(context.Background(), objectstore.S3Options{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: s3test.Region,
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
		MaxAttempts: attempts, MaxBackoff: 50 * time.Millisecond, AttemptTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestS3 runs the Store contract against a real S3 server.
func TestS3(t *testing.T) {
	srv := s3test.Start(t)
	st := newStore(t, srv, 3)
	ctx := context.Background()

	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := st.Put(ctx, "a/b/1.data", data); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "a/b/2.index", []byte("idx")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "a/c/3.data", []byte("other")); err != nil {
		t.Fatal(err)
	}
	h, err := st.Head(ctx, "a/b/1.data")
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	if h.Size != int64(len(data)) || h.ETag != hex.EncodeToString(sum[:]) {
		t.Fatalf("head = %+v, want size %d etag %x", h, len(data), sum)
	}
	for _, r := range []struct{ off, n int64 }{{0, 10}, {1 << 20, 1 << 20}, {int64(len(data)) - 5, 5}, {int64(len(data)) - 5, 100}, {100, -1}, {0, -1}} {
		got, err := st.Get(ctx, "a/b/1.data", r.off, r.n)
		if err != nil {
			t.Fatalf("get %+v: %v", r, err)
		}
		end := int64(len(data))
		if r.n >= 0 {
			end = min(end, r.off+r.n)
		}
		if !bytes.Equal(got, data[r.off:end]) {
			t.Fatalf("get %+v: %d bytes, want %d (content differs: %v)", r, len(got), end-r.off, len(got) == int(end-r.off))
		}
	}
	list, err := st.List(ctx, "a/b/")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Key != "a/b/1.data" || list[1].Key != "a/b/2.index" || list[1].Size != 3 {
		t.Fatalf("list = %+v", list)
	}
	if _, err := st.Head(ctx, "a/b/missing"); !errors.Is(err, objectstore.ErrNotFound) {
		t.Fatalf("head missing: %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctx, "a/b/missing", 0, 10); !errors.Is(err, objectstore.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, "a/b/1.data"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "a/b/1.data"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := st.Head(ctx, "a/b/1.data"); !errors.Is(err, objectstore.ErrNotFound) {
		t.Fatalf("head deleted: %v", err)
	}
	if list, err := st.List(ctx, "a/"); err != nil || len(list) != 2 {
		t.Fatalf("list after delete = %+v, %v", list, err)
	}
}

// TestS3Unavailable: a stopped store gives retriable errors on every
// operation, and the same client works again once the store is back.
func TestS3Unavailable(t *testing.T) {
	srv := s3test.Start(t)
	st := newStore(t, srv, 2)
	ctx := context.Background()
	if err := st.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ops := map[string]func() error{
		"put":    func() error { return st.Put(ctx, "k2", []byte("v")) },
		"get":    func() error { _, err := st.Get(ctx, "k", 0, 1); return err },
		"head":   func() error { _, err := st.Head(ctx, "k"); return err },
		"delete": func() error { return st.Delete(ctx, "k") },
		"list":   func() error { _, err := st.List(ctx, ""); return err },
	}
	for name, op := range ops {
		if err := op(); !objectstore.Retriable(err) {
			t.Errorf("%s with the store down: %v, want a retriable error", name, err)
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, "k", 0, -1)
	if err != nil || string(got) != "v" {
		t.Fatalf("get after restart = %q, %v", got, err)
	}
}

// TestS3BadBucket: a missing bucket is a permanent, explained error.
func TestS3BadBucket(t *testing.T) {
	srv := s3test.Start(t)
	st, err := objectstore.NewS3(context.Background(), objectstore.S3Options{
		Endpoint: srv.Endpoint, Bucket: "nope", AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Put(context.Background(), "k", []byte("v"))
	if err == nil || objectstore.Retriable(err) || errors.Is(err, objectstore.ErrNotFound) {
		t.Fatalf("put to a missing bucket: %v, want a permanent error", err)
	}
	t.Log(err)
}

func s3testStart(tb testing.TB) *s3test.Server { return s3test.Start(tb) }
