package kafka

// DeleteGroups (key 42), versions 0-2.
//
// Deletes empty groups: their subscriptions (the committed offsets) on every
// topic they committed to, then their record. A group with members, or one
// of whose subscriptions a live consumer holds (a Pulsar consumer on the
// same subscription), is NON_EMPTY_GROUP; an unknown group is
// GROUP_ID_NOT_FOUND.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 2, handleDeleteGroups) }

func handleDeleteGroups(ctx context.Context, c *conn, req *kmsg.DeleteGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	co, err := c.h.coordinator(ctx)
	for _, name := range req.Groups {
		sg := kmsg.NewDeleteGroupsResponseGroup()
		sg.Group = name
		e := err
		if e == nil {
			e = c.h.deleteShareOrGroup(ctx, co, name) // group_share.go
		}
		if e != nil {
			sg.ErrorCode = errCode(e)
			sg.ErrorMessage = errMsg(e)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
