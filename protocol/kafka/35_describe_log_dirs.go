package kafka

// DescribeLogDirs (key 35), versions 0-4.
//
// One log directory: the broker's data directory (absolute; "(memory)" for
// an in-memory broker), holding every partition. Each partition's size is
// what its retained ledgers store (the same number as the admin stats'
// storageSize and /metrics' pulsar_storage_size); the offset lag is 0 (one
// replica, never a future log). Null topics: every topic the client may
// describe. Partitions that do not exist are left out, as Kafka leaves out
// partitions it does not host. v4: the volume's total and usable bytes.

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func init() { register(0, 4, handleDescribeLogDirs) }

func handleDescribeLogDirs(ctx context.Context, c *conn, req *kmsg.DescribeLogDirsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	reqs := requestedTopics(req.Topics, func(t kmsg.DescribeLogDirsRequestTopic) (string, []int32) { return t.Topic, t.Partitions })
	topics, err := h.resolvePartitions(ctx, reqs, req.Topics == nil, auth.NeedLookup)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = "(memory)"
	if h.dataDir != "" {
		dir.Dir, _ = filepath.Abs(h.dataDir)
		var st syscall.Statfs_t
		if syscall.Statfs(h.dataDir, &st) == nil {
			dir.TotalBytes = int64(st.Blocks) * st.Bsize
			dir.UsableBytes = int64(st.Bavail) * st.Bsize
		}
	}
	for _, t := range topics {
		if t.err != nil {
			continue
		}
		rt := kmsg.NewDescribeLogDirsResponseDirTopic()
		rt.Topic = t.topic
		for _, ref := range t.parts {
			if ref.err != nil {
				continue
			}
			p, err := h.svc.OpenPartition(ctx, ref.name, false)
			if err != nil {
				continue
			}
			rp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			rp.Partition, rp.Size = ref.partition, p.Stats().Bytes
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(rt.Partitions) > 0 {
			dir.Topics = append(dir.Topics, rt)
		}
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	return resp, nil
}
