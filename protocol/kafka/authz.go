package kafka

// Authorization of Kafka requests (see package auth for the model). Kafka
// resources map onto kopernik's as follows:
//
//	topic t             t itself (a topic grant) or the namespace t lives
//	                    in: Produce needs produce; Fetch needs consume;
//	                    Metadata, ListOffsets, OffsetForLeaderEpoch,
//	                    DescribeConfigs need lookup (produce or consume);
//	                    CreateTopics, DeleteTopics, CreatePartitions,
//	                    DeleteRecords, AlterConfigs need admin (tenant
//	                    admin or superuser)
//	consumer group g    the connection's namespace (its SASL principal's,
//	                    else the handler's): every group API needs consume
//	                    there, on the whole namespace or on at least one of
//	                    its topics (a topic grant), so a role granted READ
//	                    on one topic can consume it with a group; what the
//	                    group reads or commits is still checked per topic.
//	                    Groups are scoped by that namespace, so two
//	                    tenants' groups of the same name are different groups
//	cluster             DescribeCluster and broker configs: any
//	                    authenticated client; ACL APIs: the admins of the
//	                    namespaces they touch
//
// Refusals carry Kafka's TOPIC_, GROUP_ and CLUSTER_AUTHORIZATION_FAILED;
// as in Kafka, a topic the client may not look up is reported as refused
// whether it exists or not.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// internalLookup is lookupTopic's need for the handler's own lookups, not
// made on a client request's behalf (the request was authorized already).
const internalLookup auth.Need = 0

// principal is who the request's connection authenticated as (zero with
// authentication off).
func principal(ctx context.Context) auth.Principal {
	p, _ := ctx.Value(principalKey{}).(auth.Principal)
	return p
}

// checkTopic refuses with TOPIC_AUTHORIZATION_FAILED unless the request may
// do need on topic name.
func (h *Handler) checkTopic(ctx context.Context, name broker.TopicName, need auth.Need) error {
	if h.authz == nil {
		return nil
	}
	if err := h.authz.CheckTopic(ctx, principal(ctx), name, need); err != nil {
		return authzError(kerr.TopicAuthorizationFailed, err)
	}
	return nil
}

// mayTopic reports whether the request may do need on topic name (for
// listings that leave out what the client may not see).
func (h *Handler) mayTopic(ctx context.Context, name broker.TopicName, need auth.Need) (bool, error) {
	if h.authz == nil {
		return true, nil
	}
	return h.authz.AllowedTopic(ctx, principal(ctx), name, need)
}

// checkGroup refuses with GROUP_AUTHORIZATION_FAILED unless the request
// may use consumer groups: consume in the connection's namespace, where
// its groups live, on the namespace or on one of its topics.
func (h *Handler) checkGroup(ctx context.Context) error {
	if h.authz == nil {
		return nil
	}
	tenant, ns := h.namespaceOf(ctx)
	p := principal(ctx)
	ok, err := h.authz.AllowedSomeTopic(ctx, p, tenant+"/"+ns, auth.NeedConsume)
	if err == nil && !ok {
		err = fmt.Errorf("%w: role %q may consume no topic of namespace %s/%s", auth.ErrNotAuthorized, p.Role, tenant, ns)
	}
	if err != nil {
		return authzError(kerr.GroupAuthorizationFailed, err)
	}
	return nil
}

// authzError is err as Kafka code refused: a failure to read the grants
// refuses too (fails closed), its cause kept for the log.
func authzError(refused *kerr.Error, err error) error {
	return fmt.Errorf("%w: %w", refused, err)
}
