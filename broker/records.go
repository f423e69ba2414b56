package broker

// Persisted records and their read-modify-write, in one place.
//
// Every record the broker keeps in the metadata store is JSON at one path:
//
//	/admin/tenants/<tenant>                     TenantInfo
//	/admin/policies/<tenant>/<ns>               Policies (the namespace's)
//	/admin/topics/<tenant>/<ns>/<topic>         topicRecord (partitions, created, the topic's Policies)
//	/admin/non-persistent-topics/...            topicRecord
//
// A change is a compare-and-swap loop (updateJSON): read the record and its
// version, apply the change to the decoded value, write it back only if the
// version is unchanged, otherwise start over with the newer record. That is
// what keeps two brokers on one etcd (or the admin API racing a Kafka ACL
// change in one broker) from losing each other's update; no process-local
// lock is needed for correctness. A change function may therefore run more
// than once and must only depend on the value it is given.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kopernik-io/kopernik/metadata"
)

// maxCASAttempts bounds a compare-and-swap loop. Each failed attempt means
// another writer succeeded, so running out takes sustained contention on
// one record; the caller then gets ErrConflict and may retry.
const maxCASAttempts = 100

// ErrConflict: a record kept changing under a compare-and-swap loop.
var ErrConflict = errors.New("broker: concurrent updates kept conflicting")

// ErrUnchanged, returned by a change function of an Update call, ends the
// update successfully without a write (the record already says it).
var ErrUnchanged = errors.New("broker: unchanged")

// updateJSON applies change to the record at path with compare-and-swap,
// retrying on a concurrent write. absent is returned if the record does not
// exist.
func updateJSON[T any](ctx context.Context, store metadata.Store, path string, absent error, change func(*T) error) (T, error) {
	var zero T
	for range maxCASAttempts {
		r, err := store.Get(ctx, path)
		if errors.Is(err, metadata.ErrNotFound) {
			return zero, absent
		}
		if err != nil {
			return zero, err
		}
		var v T
		if err := json.Unmarshal(r.Value, &v); err != nil {
			return zero, fmt.Errorf("broker: decoding %s: %w", path, err)
		}
		if err := change(&v); err != nil {
			if errors.Is(err, ErrUnchanged) {
				return v, nil
			}
			return zero, err
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return zero, err
		}
		_, err = store.Put(ctx, path, raw, r.Version)
		switch {
		case err == nil:
			return v, nil
		case errors.Is(err, metadata.ErrNotFound):
			return zero, absent // deleted meanwhile
		case !errors.Is(err, metadata.ErrBadVersion):
			return zero, err
		}
	}
	return zero, fmt.Errorf("%w: %s", ErrConflict, path)
}

func namespacePath(t, n string) string { return metadata.Join("admin", "policies", t, n) }

// UpdateNamespacePolicies implements Service.
func (b *Broker) UpdateNamespacePolicies(ctx context.Context, namespace string, change func(*Policies) error) error {
	t, n, err := splitNamespace(namespace)
	if err != nil {
		return err
	}
	_, err = updateJSON(ctx, b.store, namespacePath(t, n), fmt.Errorf("%w: %s", ErrNamespaceNotFound, namespace),
		func(p *Policies) error {
			if err := change(p); err != nil {
				return err
			}
			return p.Validate()
		})
	b.topics.invalidate() // before refreshPolicies reads GetTopic
	if err != nil {
		return err
	}
	b.refreshPolicies(ctx, func(name TopicName) bool { return name.NamespaceName() == namespace })
	return nil
}

// SetNamespacePolicies implements Service: UpdateNamespacePolicies
// replacing the policies whole.
func (b *Broker) SetNamespacePolicies(ctx context.Context, namespace string, p Policies) error {
	return b.UpdateNamespacePolicies(ctx, namespace, func(cur *Policies) error { *cur = p; return nil })
}

// updateTopic applies change to a topic's record (name itself, not the
// partitioned topic of a partition) with compare-and-swap.
func (b *Broker) updateTopic(ctx context.Context, name TopicName, change func(*topicRecord) error) error {
	if err := name.Validate(); err != nil {
		return err
	}
	_, err := updateJSON(ctx, b.store, topicPath(name), fmt.Errorf("%w: %s", ErrTopicNotFound, name), change)
	b.topics.invalidate()
	return err
}

// UpdateTopicPolicies implements Service.
func (b *Broker) UpdateTopicPolicies(ctx context.Context, name TopicName, change func(*Policies) error) error {
	err := b.updateTopic(ctx, name, func(rec *topicRecord) error {
		if err := change(&rec.Policies); err != nil {
			return err
		}
		return rec.Policies.Validate()
	})
	if err != nil {
		return err
	}
	b.refreshPolicies(ctx, func(n TopicName) bool { return n.Base() == name || n == name })
	return nil
}

// SetTopicPolicies implements Service: UpdateTopicPolicies replacing the
// policies whole.
func (b *Broker) SetTopicPolicies(ctx context.Context, name TopicName, p Policies) error {
	return b.UpdateTopicPolicies(ctx, name, func(cur *Policies) error { *cur = p; return nil })
}

// UpdateTenant implements Service.
func (b *Broker) UpdateTenant(ctx context.Context, tenant string, info TenantInfo) error {
	if err := ValidateSegment("tenant", tenant); err != nil {
		return err
	}
	_, err := updateJSON(ctx, b.store, metadata.Join("admin", "tenants", tenant), fmt.Errorf("%w: %s", ErrTenantNotFound, tenant),
		func(cur *TenantInfo) error { *cur = info; return nil })
	return err
}

// Policies' JSON once kept protocol records as strings in Extra; they are
// typed fields now. Records written that way still load: the old keys are
// moved into the fields when a record is decoded, and the next write
// stores the typed form.
const (
	legacySchemaPrefix  = "pulsar.schema."
	legacyTerminated    = "pulsar.terminated"
	legacyBacklogLimit  = "pulsar.backlogQuota.limitSize"
	legacyBacklogPolicy = "pulsar.backlogQuota.policy"
	legacyTopicID       = "kafka.topic.id"
)

// UnmarshalJSON decodes Policies, upgrading the legacy Extra form.
func (p *Policies) UnmarshalJSON(data []byte) error {
	type plain Policies // without this method
	var v plain
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*p = Policies(v)
	return p.upgradeLegacy()
}

func (p *Policies) upgradeLegacy() error {
	if len(p.Extra) == 0 {
		return nil
	}
	if s, ok := p.Extra[legacyTopicID]; ok {
		if p.TopicID == "" {
			p.TopicID = s
		}
		delete(p.Extra, legacyTopicID)
	}
	if s, ok := p.Extra[legacyTerminated]; ok {
		p.Terminated = p.Terminated || s == "true"
		delete(p.Extra, legacyTerminated)
	}
	if s, ok := p.Extra[legacyBacklogLimit]; ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("legacy backlog quota limit %q: %w", s, err)
		}
		if p.BacklogQuota == nil {
			p.BacklogQuota = &BacklogQuota{LimitBytes: n, Policy: p.Extra[legacyBacklogPolicy]}
		}
		delete(p.Extra, legacyBacklogLimit)
		delete(p.Extra, legacyBacklogPolicy)
	}
	var legacy []Schema
	for v := 0; ; v++ {
		raw, ok := p.Extra[legacySchemaPrefix+strconv.Itoa(v)]
		if !ok {
			break
		}
		var s Schema
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return fmt.Errorf("legacy schema version %d: %w", v, err)
		}
		legacy = append(legacy, s)
	}
	for k := range p.Extra {
		if strings.HasPrefix(k, legacySchemaPrefix) {
			delete(p.Extra, k)
		}
	}
	if len(p.Schemas) == 0 {
		p.Schemas = legacy
	}
	if len(p.Extra) == 0 {
		p.Extra = nil
	}
	return nil
}
