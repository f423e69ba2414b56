package broker

// Metadata watch: caches follow the store, not in-process calls.
//
// Every broker watches /admin in its metadata store from New to Close.
// A change to a namespace's or topic's record, made by this broker or by
// another one on the same etcd, drops the topic metadata cache
// (topicCache), re-resolves the effective policies of the loaded
// partitions it concerns and is handed to the listeners registered
// with OnMetadataChange (the authorizer's grant cache). Local updates also
// refresh at once (read-your-writes without waiting for the event); the
// watch is what keeps a second broker right. An EventReset (etcd lost
// events to compaction) refreshes everything.

import (
	"context"
	"strings"

	"github.com/kopernik-io/kopernik/metadata"
)

// MetadataChange says which record changed. Kind is "tenant", "namespace"
// (Name "tenant/ns"), "topic" (Name a full topic name) or "all" (events
// may have been lost: everything may have changed).
type MetadataChange struct {
	Kind string
	Name string
}

// OnMetadataChange registers fn to be called, from the watch goroutine and
// in store order, after every change to a tenant, namespace or topic
// record, whichever broker made it. fn must not block for long.
func (b *Broker) OnMetadataChange(fn func(MetadataChange)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.listeners = append(b.mu.listeners, fn)
}

// startMetadataWatch starts the watch goroutine (in b.bg, ended by Close).
func (b *Broker) startMetadataWatch() error {
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.store.Watch(ctx, "/admin")
	if err != nil {
		cancel()
		return err
	}
	b.bg.Go(func() {
		defer cancel()
		for {
			select {
			case <-b.stop:
				return
			case ev, ok := <-ch:
				if !ok {
					return
				}
				b.metadataChanged(ctx, ev)
			}
		}
	})
	b.bg.Go(func() {
		select {
		case <-b.stop:
			cancel() // also ends a refresh stuck on an unreachable store
		case <-ctx.Done():
		}
	})
	return nil
}

// metadataChanged refreshes what ev concerns and tells the listeners.
func (b *Broker) metadataChanged(ctx context.Context, ev metadata.Event) {
	c, ok := classifyPath(ev)
	if !ok {
		return
	}
	if c.Kind != "tenant" {
		b.topics.invalidate()
	}
	switch c.Kind {
	case "all":
		b.refreshPolicies(ctx, func(TopicName) bool { return true })
	case "namespace":
		b.refreshPolicies(ctx, func(n TopicName) bool { return n.NamespaceName() == c.Name })
	case "topic":
		name, err := ParseTopicName(c.Name, "", "")
		if err != nil {
			return
		}
		b.refreshPolicies(ctx, func(n TopicName) bool { return n.Base() == name || n == name })
	}
	b.mu.Lock()
	listeners := append([]func(MetadataChange){}, b.mu.listeners...)
	b.mu.Unlock()
	for _, fn := range listeners {
		fn(c)
	}
}

// classifyPath maps a watch event under /admin to the record it changed.
func classifyPath(ev metadata.Event) (MetadataChange, bool) {
	if ev.Type == metadata.EventReset {
		return MetadataChange{Kind: "all"}, true
	}
	seg := strings.Split(strings.TrimPrefix(ev.Path, "/"), "/")
	if len(seg) < 2 || seg[0] != "admin" {
		return MetadataChange{}, false
	}
	switch {
	case seg[1] == "tenants" && len(seg) == 3:
		return MetadataChange{Kind: "tenant", Name: seg[2]}, true
	case seg[1] == "policies" && len(seg) == 4:
		return MetadataChange{Kind: "namespace", Name: seg[2] + "/" + seg[3]}, true
	case seg[1] == "topics" && len(seg) == 5:
		return MetadataChange{Kind: "topic", Name: "persistent://" + strings.Join(seg[2:], "/")}, true
	case seg[1] == "non-persistent-topics" && len(seg) == 5:
		return MetadataChange{Kind: "topic", Name: "non-persistent://" + strings.Join(seg[2:], "/")}, true
	}
	return MetadataChange{}, false
}
