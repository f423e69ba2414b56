package broker

import "testing"

func TestMurmur3(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
	}{
		{"", 0},
		{"hello", 0x248bfa47},
		{"The quick brown fox jumps over the lazy dog", 0x2e4ff723},
	} {
		if got := murmur3x86_32([]byte(tc.in), 0); got != tc.want {
			t.Errorf("murmur3(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	// The keys of pulsar-client-go's TestConsumerKeyShared: they must not
	// all land in one half of the hash space.
	for k, want := range map[string]int{"key-shared-0": 30051, "key-shared-1": 9321, "key-shared-2": 34195} {
		if got := keySlot([]byte(k)); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", k, got, want)
		}
	}
}

func TestKeyRangesAutoSplit(t *testing.T) {
	a, b, c := &DispatchConsumer{Name: "a"}, &DispatchConsumer{Name: "b"}, &DispatchConsumer{Name: "c"}
	var rs []keyRange
	rs = addKeyRange(rs, a)
	rs = addKeyRange(rs, b)
	if keyOwner(rs, 0) != b || keyOwner(rs, 32768) != b || keyOwner(rs, 32769) != a || keyOwner(rs, 65535) != a {
		t.Fatalf("two consumers: %+v", rs)
	}
	rs = addKeyRange(rs, c) // splits b's [0,32768], the lowest of two equal ranges
	if keyOwner(rs, 0) != c || keyOwner(rs, 16384) != c || keyOwner(rs, 16385) != b || keyOwner(rs, 40000) != a {
		t.Fatalf("three consumers: %+v", rs)
	}
	rs = removeKeyRange(rs, a) // topmost: goes down to b
	if keyOwner(rs, 65535) != b || keyOwner(rs, 0) != c {
		t.Fatalf("after removing a: %+v", rs)
	}
	rs = removeKeyRange(rs, c) // goes up to b
	if len(rs) != 1 || keyOwner(rs, 0) != b || keyOwner(rs, 65535) != b {
		t.Fatalf("after removing c: %+v", rs)
	}
}
