package metadata

import (
	"context"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ChildRecordser is implemented by stores that read every child record of
// a path with its value in a few range reads (Etcd), instead of Children
// and one Get per child.
type ChildRecordser interface {
	// ChildRecords returns the records directly under path (names without
	// a '/'; records of deeper descendants are not returned), as of one
	// revision.
	ChildRecords(ctx context.Context, path string) (map[string]Record, error)
}

// ChildRecords implements ChildRecordser: pages of childrenPage keys with
// their values, all read at the revision of the first page.
func (s *Etcd) ChildRecords(ctx context.Context, path string) (map[string]Record, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	prefix := path + "/"
	if path == "/" {
		prefix = "/"
	}
	end := rangeEnd(prefix)
	out := map[string]Record{}
	from := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(childrenPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, from, opts...)
		if err != nil {
			return nil, fail(ctx, "child records", path, err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			if rest := string(kv.Key[len(prefix):]); rest != "" && !strings.Contains(rest, "/") {
				out[rest] = Record{Value: kv.Value, Version: kv.Version}
			}
			from = string(kv.Key) + "\x00"
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
	}
}
