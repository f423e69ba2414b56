package metadata

import (
	"context"
	"errors"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
	"testing"
)

// TestEtcdTxn: multi-record conditions (absent, version, value) and what a
// failure reports.
func TestEtcdTxn(t *testing.T) {
	srv, prefix := etcdtest.Shared(t)
	s := openEtcd(t, srv, WithEtcdPrefix(prefix))
	ctx := context.Background()
	if _, err := s.Put(ctx, "/owner/a", []byte("me-1"), AnyVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "/owner/b", []byte("me-2"), AnyVersion); err != nil {
		t.Fatal(err)
	}
	ok := []Cond{{Path: "/rec/1", Absent: true}, {Path: "/owner/a", Value: []byte("me-1")}, {Path: "/owner/b", Version: 1}}
	if err := s.Txn(ctx, ok, []Op{{Path: "/rec/1", Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(ctx, "/rec/1"); err != nil || string(r.Value) != "x" {
		t.Fatalf("after txn: %q %v", r.Value, err)
	}
	// Every condition wrong at once: all reported, nothing written.
	bad := []Cond{{Path: "/rec/1", Absent: true}, {Path: "/owner/a", Value: []byte("me-0")}, {Path: "/owner/b", Version: 2}, {Path: "/owner/none", Value: []byte("v")}}
	err := s.Txn(ctx, bad, []Op{{Path: "/rec/2", Value: []byte("y")}})
	var fe *TxnFailedError
	if !errors.As(err, &fe) || !errors.Is(err, ErrBadVersion) || len(fe.Failed) != 4 {
		t.Fatalf("failed txn: %v", err)
	}
	if _, err := s.Get(ctx, "/rec/2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed txn wrote: %v", err)
	}
	// Delete ops.
	if err := s.Txn(ctx, []Cond{{Path: "/owner/a", Value: []byte("me-1")}}, []Op{{Path: "/rec/1", Delete: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "/rec/1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted by txn: %v", err)
	}
}
