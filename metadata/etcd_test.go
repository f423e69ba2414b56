package metadata

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func openEtcd(t *testing.T, srv *etcdtest.Server, opts ...EtcdOption) *Etcd {
	t.Helper()
	s, err := OpenEtcd(srv.Endpoints(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nextEvent waits for one event on ch.
func nextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

// Children pages through large subtrees; with a page of 3 keys every case
// of the skip logic (subtree ends a page, sibling after a subtree) occurs.
func TestEtcdChildrenPaging(t *testing.T) {
	srv, prefix := etcdtest.Shared(t)
	s := openEtcd(t, srv, WithEtcdPrefix(prefix))
	old := childrenPage
	childrenPage = 3
	defer func() { childrenPage = old }()
	var want []string
	for i := range 10 {
		name := fmt.Sprintf("c%02d", i)
		want = append(want, name)
		mustPut(t, s, "/p/"+name, "v", NotExists)
		if i%3 == 0 {
			for j := range 4 {
				mustPut(t, s, fmt.Sprintf("/p/%s/d%d", name, j), "v", NotExists)
			}
		}
		if i%4 == 0 {
			want = append(want, name+"-x")
			mustPut(t, s, "/p/"+name+"-x/deep", "v", NotExists)
		}
	}
	mustPut(t, s, "/p0", "sibling of /p, not a child", NotExists)
	wantChildren(t, s, "/p", sortedCopy(want)...)
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// A watch survives an etcd restart: the client re-establishes it from the
// last revision delivered, so writes made while it was broken (here by a
// second client after the restart, before the first reconnects) arrive.
// Meanwhile calls fail with ErrUnavailable and Healthy reports the outage.
func TestEtcdWatchAcrossRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	s := openEtcd(t, srv, WithEtcdOpTimeout(500*time.Millisecond))
	ch, err := s.Watch(ctx(), "/w")
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "/w/a", "1", NotExists)
	if ev := nextEvent(t, ch); ev != (Event{EventPut, "/w/a", 1}) {
		t.Fatalf("event %+v", ev)
	}
	if err := s.Healthy(ctx()); err != nil {
		t.Fatalf("healthy before stop: %v", err)
	}

	srv.Stop() // waits for etcd's request timeout (~5s) to end the open watch stream
	_, err = s.Put(ctx(), "/w/a", []byte("x"), 1)
	wantErr(t, err, ErrUnavailable)
	c, cancel := context.WithTimeout(ctx(), 500*time.Millisecond)
	wantErr(t, s.Healthy(c), ErrUnavailable)
	cancel()

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	other := openEtcd(t, srv)
	mustPut(t, other, "/w/a", "2", 1)
	mustPut(t, other, "/w/b", "1", NotExists)
	for _, want := range []Event{{EventPut, "/w/a", 2}, {EventPut, "/w/b", 1}} {
		if ev := nextEvent(t, ch); ev != want {
			t.Fatalf("event after restart %+v, want %+v", ev, want)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Healthy(ctx()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not healthy after restart: %v", s.Healthy(ctx()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A watch whose history was compacted away delivers EventReset for its
// prefix and then the events that follow.
func TestEtcdWatchCompacted(t *testing.T) {
	srv, prefix := etcdtest.Shared(t)
	s := openEtcd(t, srv, WithEtcdPrefix(prefix))
	// Watch from a revision before writes that are then compacted: the
	// same situation as a watch resuming after a long outage.
	rev, err := s.revision(ctx())
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "/w/a", "1", NotExists)
	mustPut(t, s, "/w/a", "2", 1)
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	last, err := cli.Get(ctx(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx(), last.Header.Revision); err != nil {
		t.Fatal(err)
	}
	w := newWatcher("/w")
	wctx, cancel := context.WithCancel(ctx())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.close()
		s.watch(wctx, w, rev)
	}()
	defer func() { cancel(); <-done }()
	if ev := nextEvent(t, w.out); ev != (Event{Type: EventReset, Path: "/w"}) {
		t.Fatalf("first event %+v, want reset", ev)
	}
	mustPut(t, s, "/w/a", "3", 2)
	if ev := nextEvent(t, w.out); ev != (Event{EventPut, "/w/a", 3}) {
		t.Fatalf("event after reset %+v", ev)
	}
}

func TestEtcdOpenUnreachable(t *testing.T) {
	srv := etcdtest.Start(t)
	srv.Stop()
	_, err := OpenEtcd(srv.Endpoints(), WithEtcdDialTimeout(300*time.Millisecond))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("open of a stopped etcd: %v", err)
	}
}
