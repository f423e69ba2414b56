package metadata

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata/etcdtest"
	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

// storeImpls are the implementations every contract case runs over.
var storeImpls = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"memory", func(t *testing.T) Store { return NewMemory() }},
	{"bolt", func(t *testing.T) Store {
		s, err := OpenBolt(filepath.Join(t.TempDir(), "meta.db"), WithBoltMaxBatchDelay(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"etcd", func(t *testing.T) Store {
		srv, prefix := etcdtest.Shared(t)
		s, err := OpenEtcd(srv.Endpoints(), WithEtcdPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	// Without fsync, commits are fast enough for commit handlers of
	// consecutive transactions to overlap: the event-ordering path.
	{"bolt-nosync", func(t *testing.T) Store {
		s, err := OpenBolt(filepath.Join(t.TempDir(), "meta.db"), WithBoltNoSync(), WithBoltMaxBatchDelay(time.Microsecond), WithBoltMaxBatchSize(2))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// contractCases is the Store contract, one case per rule.
var contractCases = []struct {
	name string
	run  func(t *testing.T, s Store)
}{
	{"get missing", func(t *testing.T, s Store) {
		_, err := s.Get(ctx(), "/nope")
		wantErr(t, err, ErrNotFound)
	}},
	{"create if absent", func(t *testing.T, s Store) {
		v := mustPut(t, s, "/a", "1", NotExists)
		if v != 1 {
			t.Fatalf("first version %d, want 1", v)
		}
		_, err := s.Put(ctx(), "/a", []byte("2"), NotExists)
		wantErr(t, err, ErrExists)
		wantRecord(t, s, "/a", "1", 1)
	}},
	{"compare and swap", func(t *testing.T, s Store) {
		mustPut(t, s, "/a", "1", NotExists)
		if v := mustPut(t, s, "/a", "2", 1); v != 2 {
			t.Fatalf("version %d, want 2", v)
		}
		_, err := s.Put(ctx(), "/a", []byte("x"), 1)
		wantErr(t, err, ErrBadVersion)
		_, err = s.Put(ctx(), "/missing", []byte("x"), 3)
		wantErr(t, err, ErrNotFound)
		wantRecord(t, s, "/a", "2", 2)
	}},
	{"any version", func(t *testing.T, s Store) {
		if v := mustPut(t, s, "/a", "1", AnyVersion); v != 1 {
			t.Fatalf("create version %d", v)
		}
		if v := mustPut(t, s, "/a", "2", AnyVersion); v != 2 {
			t.Fatalf("update version %d", v)
		}
		wantRecord(t, s, "/a", "2", 2)
	}},
	{"empty value", func(t *testing.T, s Store) {
		mustPut(t, s, "/a", "", NotExists)
		wantRecord(t, s, "/a", "", 1)
	}},
	{"values are copied", func(t *testing.T, s Store) {
		buf := []byte("abc")
		if _, err := s.Put(ctx(), "/a", buf, NotExists); err != nil {
			t.Fatal(err)
		}
		buf[0] = 'X'
		r, _ := s.Get(ctx(), "/a")
		r.Value[1] = 'Y'
		wantRecord(t, s, "/a", "abc", 1)
	}},
	{"delete", func(t *testing.T, s Store) {
		wantErr(t, s.Delete(ctx(), "/a", AnyVersion), ErrNotFound)
		mustPut(t, s, "/a", "1", NotExists)
		mustPut(t, s, "/a", "2", 1)
		wantErr(t, s.Delete(ctx(), "/a", 1), ErrBadVersion)
		if err := s.Delete(ctx(), "/a", 2); err != nil {
			t.Fatal(err)
		}
		_, err := s.Get(ctx(), "/a")
		wantErr(t, err, ErrNotFound)
		// A re-created key starts over at version 1 (etcd's per-key version does too).
		if v := mustPut(t, s, "/a", "3", NotExists); v != 1 {
			t.Fatalf("re-created version %d", v)
		}
		if err := s.Delete(ctx(), "/a", AnyVersion); err != nil {
			t.Fatal(err)
		}
	}},
	{"delete keeps children", func(t *testing.T, s Store) {
		mustPut(t, s, "/a", "p", NotExists)
		mustPut(t, s, "/a/b", "c", NotExists)
		if err := s.Delete(ctx(), "/a", AnyVersion); err != nil {
			t.Fatal(err)
		}
		wantRecord(t, s, "/a/b", "c", 1)
		wantChildren(t, s, "/", "a")
	}},
	{"children", func(t *testing.T, s Store) {
		for _, p := range []string{"/t/b", "/t/a", "/t/a/x", "/t/c/deep/er", "/t/b-c", "/t/b.d", "/t0", "/u"} {
			mustPut(t, s, p, "v", NotExists)
		}
		wantChildren(t, s, "/", "t", "t0", "u")
		wantChildren(t, s, "/t", "a", "b", "b-c", "b.d", "c") // c only has descendants
		wantChildren(t, s, "/t/a", "x")
		wantChildren(t, s, "/t/c", "deep")
		wantChildren(t, s, "/t/b")
		wantChildren(t, s, "/missing")
	}},
	{"children after delete", func(t *testing.T, s Store) {
		mustPut(t, s, "/t/a/x", "v", NotExists)
		mustPut(t, s, "/t/b", "v", NotExists)
		if err := s.Delete(ctx(), "/t/a/x", AnyVersion); err != nil {
			t.Fatal(err)
		}
		wantChildren(t, s, "/t", "b")
	}},
	{"invalid paths", func(t *testing.T, s Store) {
		for _, p := range []string{"", "a", "/a/", "//a", "/a//b", "/a/./b", "/a/../b", "/.."} {
			_, err := s.Get(ctx(), p)
			wantErr(t, err, ErrInvalidPath)
			_, err = s.Put(ctx(), p, nil, AnyVersion)
			wantErr(t, err, ErrInvalidPath)
			wantErr(t, s.Delete(ctx(), p, AnyVersion), ErrInvalidPath)
			_, err = s.Children(ctx(), p)
			wantErr(t, err, ErrInvalidPath)
			_, err = s.Watch(ctx(), p)
			wantErr(t, err, ErrInvalidPath)
		}
	}},
	{"watch", func(t *testing.T, s Store) {
		c, cancel := context.WithCancel(ctx())
		ch, err := s.Watch(c, "/w")
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "/w", "1", NotExists)
		mustPut(t, s, "/w2", "not under /w", NotExists)
		mustPut(t, s, "/w/a", "1", NotExists)
		mustPut(t, s, "/w/a", "2", 1)
		_, err = s.Put(ctx(), "/w/a", []byte("lost"), 1) // failed CAS: no event
		wantErr(t, err, ErrBadVersion)
		if err := s.Delete(ctx(), "/w/a", AnyVersion); err != nil {
			t.Fatal(err)
		}
		want := []Event{
			{EventPut, "/w", 1},
			{EventPut, "/w/a", 1},
			{EventPut, "/w/a", 2},
			{EventDelete, "/w/a", 2},
		}
		for i, w := range want {
			select {
			case ev := <-ch:
				if ev != w {
					t.Fatalf("event %d: got %+v, want %+v", i, ev, w)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("event %d: timeout", i)
			}
		}
		cancel()
		waitClosed(t, ch)
	}},
	{"watch ends on close", func(t *testing.T, s Store) {
		ch, err := s.Watch(ctx(), "/")
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		waitClosed(t, ch)
	}},
	{"closed", func(t *testing.T, s Store) {
		mustPut(t, s, "/a", "1", NotExists)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		_, err := s.Get(ctx(), "/a")
		wantErr(t, err, ErrClosed)
		_, err = s.Put(ctx(), "/a", nil, AnyVersion)
		wantErr(t, err, ErrClosed)
		wantErr(t, s.Delete(ctx(), "/a", AnyVersion), ErrClosed)
		_, err = s.Children(ctx(), "/")
		wantErr(t, err, ErrClosed)
		_, err = s.Watch(ctx(), "/")
		wantErr(t, err, ErrClosed)
	}},
	{"one creator wins", func(t *testing.T, s Store) {
		const n = 16
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, errs[i] = s.Put(ctx(), "/lock", []byte(fmt.Sprint(i)), NotExists)
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrExists):
				t.Fatalf("unexpected error %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d creators won", won)
		}
	}},
	{"concurrent compare and swap", func(t *testing.T, s Store) {
		// Writers increment a counter with read-modify-CAS; no update is
		// lost and a watcher sees every version of the key in order.
		c, cancel := context.WithCancel(ctx())
		defer cancel()
		ch, err := s.Watch(c, "/counter")
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "/counter", "0", NotExists)
		const writers, each = 8, 10
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for range each {
					for {
						r, err := s.Get(ctx(), "/counter")
						if err != nil {
							t.Error(err)
							return
						}
						var n int
						fmt.Sscan(string(r.Value), &n)
						_, err = s.Put(ctx(), "/counter", []byte(fmt.Sprint(n+1)), r.Version)
						if err == nil {
							break
						}
						if !errors.Is(err, ErrBadVersion) {
							t.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		wantRecord(t, s, "/counter", fmt.Sprint(writers*each), writers*each+1)
		for v := int64(1); v <= writers*each+1; v++ {
			select {
			case ev := <-ch:
				if ev.Version != v {
					t.Fatalf("event version %d, want %d", ev.Version, v)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("version %d: timeout", v)
			}
		}
	}},
	{"events ordered per key under concurrent writers", func(t *testing.T, s Store) {
		c, cancel := context.WithCancel(ctx())
		defer cancel()
		ch, err := s.Watch(c, "/k")
		if err != nil {
			t.Fatal(err)
		}
		const writers, each = 8, 25
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				path := fmt.Sprintf("/k/%d", w)
				for range each {
					if _, err := s.Put(ctx(), path, []byte("v"), AnyVersion); err != nil {
						t.Error(err)
						return
					}
				}
				if err := s.Delete(ctx(), path, AnyVersion); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		last := map[string]int64{}
		for range writers * (each + 1) {
			select {
			case ev := <-ch:
				switch ev.Type {
				case EventPut:
					if ev.Version != last[ev.Path]+1 {
						t.Fatalf("%s: version %d after %d", ev.Path, ev.Version, last[ev.Path])
					}
					last[ev.Path] = ev.Version
				case EventDelete:
					if ev.Version != each || last[ev.Path] != each {
						t.Fatalf("%s: delete of version %d after %d", ev.Path, ev.Version, last[ev.Path])
					}
					last[ev.Path] = -1
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("missing events: %v", last)
			}
		}
		for p, v := range last {
			if v != -1 {
				t.Fatalf("%s: no delete event (last version %d)", p, v)
			}
		}
	}},
}

func TestStoreContract(t *testing.T) {
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) {
			for _, tc := range contractCases {
				t.Run(tc.name, func(t *testing.T) {
					s := impl.open(t)
					defer s.Close()
					tc.run(t, s)
				})
			}
		})
	}
}

func TestBoltReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "/a", "1", NotExists)
	mustPut(t, s, "/a", "2", 1)
	mustPut(t, s, "/d/x/y", "deep", NotExists)
	mustPut(t, s, "/gone", "x", NotExists)
	if err := s.Delete(ctx(), "/gone", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantRecord(t, s, "/a", "2", 2)
	wantRecord(t, s, "/d/x/y", "deep", 1)
	wantChildren(t, s, "/", "a", "d")
	if _, err := s.Get(ctx(), "/gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	// Versions continue, and watches work on the reopened file.
	ch, err := s.Watch(ctx(), "/a")
	if err != nil {
		t.Fatal(err)
	}
	if v := mustPut(t, s, "/a", "3", 2); v != 3 {
		t.Fatalf("version after reopen %d", v)
	}
	select {
	case ev := <-ch:
		if ev != (Event{EventPut, "/a", 3}) {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after reopen")
	}
}

func TestBoltRefusesNewerFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(boltMetaBucket).Put(boltFormatKey, []byte{0, 0, 0, 0, 0, 0, 0, 99})
	})
	db.Close()
	if _, err := OpenBolt(path); err == nil {
		t.Fatal("opened a file with a newer format version")
	}
}

func ctx() context.Context { return context.Background() }

func mustPut(t *testing.T, s Store, path, value string, version int64) int64 {
	t.Helper()
	v, err := s.Put(ctx(), path, []byte(value), version)
	if err != nil {
		t.Fatalf("put %s: %v", path, err)
	}
	return v
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func wantRecord(t *testing.T, s Store, path, value string, version int64) {
	t.Helper()
	r, err := s.Get(ctx(), path)
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	if string(r.Value) != value || r.Version != version {
		t.Fatalf("get %s: %q@%d, want %q@%d", path, r.Value, r.Version, value, version)
	}
}

func wantChildren(t *testing.T, s Store, path string, want ...string) {
	t.Helper()
	got, err := s.Children(ctx(), path)
	if err != nil {
		t.Fatalf("children %s: %v", path, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("children %s: %q, want %q", path, got, want)
	}
}

func waitClosed(t *testing.T, ch <-chan Event) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed")
		}
	}
}
