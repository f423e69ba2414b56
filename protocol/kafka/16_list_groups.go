package kafka

// ListGroups (key 16), versions 0-5.
//
// Every group of the connection's namespace: those with members, those that
// only committed offsets (simple consumers, empty groups), and durable
// subscriptions made by Pulsar consumers (Empty, protocol type "consumer";
// group_pulsar.go). v4+: filter by
// state (case-insensitive, KIP-518). v5+: filter by type: "consumer" for
// KIP-848 groups (group_consumer.go), "classic" for the rest.

import (
	"context"
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 5, handleListGroups) }

func handleListGroups(ctx context.Context, c *conn, req *kmsg.ListGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	co, err := c.h.coordinator(ctx)
	if errors.Is(err, kerr.GroupAuthorizationFailed) {
		// As Kafka does, list only the groups the client may describe:
		// none, here.
		return resp, nil
	}
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	all := append(co.list(), c.h.subscriptionGroups(ctx, co)...)
	all = withShareGroups(ctx, c.h, all) // group_share.go
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	for _, v := range all {
		if !listFilter(v, req.StatesFilter, req.TypesFilter) {
			continue
		}
		sg := kmsg.NewListGroupsResponseGroup()
		sg.Group, sg.ProtocolType, sg.GroupState, sg.GroupType = v.name, v.protocolType, v.state, v.groupType()
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
