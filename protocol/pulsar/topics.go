package pulsar

// GET_TOPICS_OF_NAMESPACE: the namespace's persistent topics, partitioned
// topics as their partitions (as Pulsar lists them), optionally filtered by
// the client's regular expression (then filtered=true). A namespace that
// does not exist has no topics. topics_hash is a
// CRC32C of the sorted list; changed is always true
// and the list always sent (the Go client reads only the list).

import (
	"context"
	"errors"
	"hash/crc32"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

func (c *conn) handleGetTopicsOfNamespace(ctx context.Context, cmd *pb.CommandGetTopicsOfNamespace) error {
	reqID := cmd.GetRequestId()
	ns, err := namespaceName(cmd.GetNamespace())
	if err == nil {
		err = c.authorize(ctx, ns, auth.NeedLookup)
	}
	if err != nil {
		return c.sendError(reqID, err)
	}
	var topics []string
	if cmd.GetMode() != pb.CommandGetTopicsOfNamespace_NON_PERSISTENT {
		mds, err := c.h.env.Broker.ListTopics(ctx, ns)
		if err != nil && !errors.Is(err, broker.ErrNamespaceNotFound) {
			// A missing namespace has no topics (Pulsar answers an empty
			// list; the Go client retries errors until its timeout).
			return c.sendError(reqID, err)
		}
		for _, md := range mds {
			if md.Partitions == 0 {
				topics = append(topics, md.Name.String())
				continue
			}
			for i := range md.Partitions {
				topics = append(topics, md.Name.Partition(i).String())
			}
		}
	}
	filtered := false
	if pat := cmd.GetTopicsPattern(); pat != "" {
		// The pattern may omit the domain, as Pulsar allows.
		pat = strings.TrimPrefix(pat, "persistent://")
		if re, err := regexp.Compile("^(?:" + pat + ")$"); err == nil {
			filtered = true
			kept := topics[:0]
			for _, t := range topics {
				if re.MatchString(strings.TrimPrefix(t, "persistent://")) {
					kept = append(kept, t)
				}
			}
			topics = kept
		}
	}
	sort.Strings(topics)
	hash := strconv.FormatUint(uint64(crc32.Checksum([]byte(strings.Join(topics, "\n")), crcTable)), 16)
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_TOPICS_OF_NAMESPACE_RESPONSE.Enum(),
		GetTopicsOfNamespaceResponse: &pb.CommandGetTopicsOfNamespaceResponse{
			RequestId: proto.Uint64(reqID), Topics: topics, Filtered: proto.Bool(filtered),
			TopicsHash: proto.String(hash), Changed: proto.Bool(true),
		}})
}
