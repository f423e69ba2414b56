package metadata

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kopernik-io/kopernik/metadata/etcdtest"
)

// BenchmarkEtcd measures the etcd store against the embedded etcd (one
// member, fsync on, loopback): durable puts one at a time and from 16
// writers, compare-and-swap puts, and linearizable gets.
func BenchmarkEtcd(b *testing.B) {
	srv, prefix := etcdtest.Shared(b)
	s, err := OpenEtcd(srv.Endpoints(), WithEtcdPrefix(prefix))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	value := make([]byte, 256)
	var n atomic.Int64
	put := func(b *testing.B) {
		if _, err := s.Put(ctx(), fmt.Sprintf("/bench/k%d", n.Add(1)%1024), value, AnyVersion); err != nil {
			b.Error(err)
		}
	}
	b.Run("put", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		for b.Loop() {
			put(b)
		}
	})
	b.Run("put-parallel", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				put(b)
			}
		})
	})
	b.Run("cas", func(b *testing.B) {
		v, err := s.Put(ctx(), "/bench/cas", value, AnyVersion)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if v, err = s.Put(ctx(), "/bench/cas", value, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Get(ctx(), "/bench/cas"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
