package metadata

import (
	"context"
	"fmt"
	"testing"

	"github.com/kopernik-io/kopernik/metadata/etcdtest"
)

// ChildRecords returns exactly the direct children with their values,
// across pages, skipping deeper descendants.
func TestEtcdChildRecords(t *testing.T) {
	srv, prefix := etcdtest.Shared(t)
	s := openEtcd(t, srv, WithEtcdPrefix(prefix))
	old := childrenPage
	childrenPage = 3
	defer func() { childrenPage = old }()
	want := map[string]string{}
	for i := range 10 {
		name := fmt.Sprintf("c%02d", i)
		want[name] = "v" + name
		mustPut(t, s, "/r/"+name, "v"+name, NotExists)
		if i%3 == 0 {
			mustPut(t, s, "/r/"+name+"/deep", "x", NotExists)
		}
	}
	mustPut(t, s, "/r-sibling", "x", NotExists)
	got, err := s.ChildRecords(context.Background(), "/r")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d children, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if string(got[k].Value) != v || got[k].Version != 1 {
			t.Fatalf("%s: %q version %d, want %q version 1", k, got[k].Value, got[k].Version, v)
		}
	}
}
