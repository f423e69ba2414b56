package broker

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestStateStore(t *testing.T) {
	ctx := context.Background()
	b := newTestBroker(t)
	var ss StateStore = b
	if _, err := ss.GetState(ctx, "kafka-group", "g"); !errors.Is(err, ErrStateNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if keys, err := ss.ListState(ctx, "kafka-group"); err != nil || len(keys) != 0 {
		t.Fatalf("list empty kind: %v %v", keys, err)
	}
	// Keys that are not path segments as they are.
	keys := []string{"g", "a/b", "..", ".", "100%", "sp ace"}
	for i, k := range keys {
		if err := ss.PutState(ctx, "kafka-group", k, []byte{byte(i)}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	if err := ss.PutState(ctx, "other", "g", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := ss.PutState(ctx, "kafka-group", "g", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if v, err := ss.GetState(ctx, "kafka-group", "g"); err != nil || string(v) != "new" {
		t.Fatalf("get: %q %v", v, err)
	}
	if v, err := ss.GetState(ctx, "kafka-group", "a/b"); err != nil || len(v) != 1 || v[0] != 1 {
		t.Fatalf("get a/b: %v %v", v, err)
	}
	got, err := ss.ListState(ctx, "kafka-group")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("list: %q want %q", got, want)
	}
	if err := ss.DeleteState(ctx, "kafka-group", "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := ss.DeleteState(ctx, "kafka-group", "a/b"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := ss.GetState(ctx, "kafka-group", "a/b"); !errors.Is(err, ErrStateNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if err := ss.PutState(ctx, "", "k", nil); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("empty kind: %v", err)
	}
}
