package segment

import (
	"testing"
	"time"
)

// BenchmarkAppendSync: one record then one Sync, the unbatched worst case.
func BenchmarkAppendSync(b *testing.B) {
	for _, prealloc := range []int64{0, 8 << 20} {
		b.Run(map[bool]string{true: "prealloc", false: "grow"}[prealloc > 0], func(b *testing.B) {
			opts := Options{Dir: b.TempDir(), Logger: quietLogger(), Prealloc: prealloc, IndexInterval: benchInterval}
			s, err := Create(opts, 1, 0, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, 1024)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := Record{EntryID: int64(i), FirstIndex: int64(i), MsgCount: 1, Data: data}
				if _, err := s.Append(&r); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchInterval int64 = 4096
