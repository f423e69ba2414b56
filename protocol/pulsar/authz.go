package pulsar

// Authorization of Pulsar commands (the model is package auth's: superusers,
// tenant admins, namespace and topic produce/consume grants). Every command
// that names a topic is checked against that topic (a grant on it, on its
// partitioned topic for a partition, or on its namespace), one that names a
// namespace against the namespace's own grants, for the role CONNECT
// authenticated, right after the name is parsed and before anything else
// is done with it: a refused client creates nothing (no auto-created
// topic, subscription or schema) and learns nothing about what exists.
//
//	command                  needs (on the topic)       refused with
//	LOOKUP                   lookup                     LOOKUP_RESPONSE Failed, AuthorizationError
//	PARTITIONED_METADATA     lookup                     PARTITIONED_METADATA_RESPONSE Failed, AuthorizationError
//	PRODUCER                 produce; also consume      ERROR AuthorizationError
//	                         with initial_subscription
//	SUBSCRIBE                consume (durable           ERROR AuthorizationError
//	                         subscriptions and readers)
//	GET_TOPICS_OF_NAMESPACE  lookup on the namespace    ERROR AuthorizationError
//	                         (topic grants do not count,
//	                         as in Pulsar)
//	GET_SCHEMA               lookup                     GET_SCHEMA_RESPONSE error_code AuthorizationError
//	GET_OR_CREATE_SCHEMA     produce                    GET_OR_CREATE_SCHEMA_RESPONSE error_code AuthorizationError
//
// lookup is granted by produce or consume. Commands on an existing producer
// (SEND, CLOSE_PRODUCER) or consumer (FLOW, ACK, REDELIVER_UNACKNOWLEDGED_
// MESSAGES, SEEK, GET_LAST_MESSAGE_ID, UNSUBSCRIBE, CLOSE_CONSUMER) find it by
// id among the connection's own only, so they can act only on what this
// connection's PRODUCER or SUBSCRIBE was allowed to create. CONNECT, PING
// and PONG name nothing. Every other command (transactions, topic-list
// watchers, consumer stats, ...) is not served and is answered ERROR
// NotAllowedError by conn.handle, so it can touch nothing either.
//
// As in Pulsar, a grant is checked when a producer or consumer is created:
// a revocation refuses the next PRODUCER or SUBSCRIBE at once (the
// authorizer's cache is dropped by the admin API), while producers and
// consumers already attached stay until they close. A failure to read the
// grants refuses too (fail closed); its cause is logged, not sent.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// authorize returns nil when the connection's role may do need in
// namespace ("tenant/ns") as a whole, else an error wrapping
// auth.ErrNotAuthorized (errors.go answers it as AuthorizationError).
// Always nil with authorization off.
func (c *conn) authorize(ctx context.Context, namespace string, need auth.Need) error {
	z := c.h.env.Authz
	if z == nil {
		return nil
	}
	return c.refusal(z.Check(ctx, c.principal, namespace, need), "namespace", namespace, need)
}

// authorizeTopic is authorize on topic name: its own grants count too.
func (c *conn) authorizeTopic(ctx context.Context, name broker.TopicName, need auth.Need) error {
	z := c.h.env.Authz
	if z == nil {
		return nil
	}
	return c.refusal(z.CheckTopic(ctx, c.principal, name, need), "topic", name.String(), need)
}

// refusal logs a check's failure (kind "namespace" or "topic" what) and
// returns what the client is told: err itself for a refusal, a refusal
// without the cause when the grants could not be read.
func (c *conn) refusal(err error, kind, what string, need auth.Need) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auth.ErrNotAuthorized):
		c.log.Warn("request refused", "role", c.principal.Role, kind, what, "need", need.String())
		return err
	}
	c.log.Error("refusing request: permissions could not be read", "role", c.principal.Role,
		kind, what, "need", need.String(), "err", err)
	return fmt.Errorf("%w: role %q may not %s on %s %s: permissions could not be checked",
		auth.ErrNotAuthorized, c.principal.Role, need, kind, what)
}

// namespaceName checks that s is "tenant/namespace" with valid names.
func namespaceName(s string) (string, error) {
	tenant, ns, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(ns, "/") {
		return "", fmt.Errorf("%w: namespace %q: want tenant/namespace", broker.ErrInvalidName, s)
	}
	if err := broker.ValidateSegment("tenant", tenant); err != nil {
		return "", err
	}
	if err := broker.ValidateSegment("namespace", ns); err != nil {
		return "", err
	}
	return s, nil
}
