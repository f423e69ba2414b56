package broker

import "sync"

// topicCache keeps GetTopic's answers, so that the hot paths (every Kafka
// produce and fetch looks its topics up) do not read the metadata store:
// with etcd that is a network round trip per request, and an outage would
// stall produce to topics whose data is local.
//
// It is invalidated whole, by the metadata watch (any broker's change to a
// namespace or topic record) and by this broker's own writes, right after
// they are stored (read-your-writes). A fill that began before an
// invalidation is dropped (gen), so a stale answer cannot be cached after
// the event that made it stale.
type topicCache struct {
	mu     sync.Mutex
	gen    uint64
	byName map[string]TopicMetadata // by topic; a partitioned topic's partitions use its entry (GetTopic)
}

// maxCachedTopics bounds the cache; a full cache is dropped.
const maxCachedTopics = 1 << 14

// get returns the cached metadata of name, or the generation a fill
// started now must present to put.
func (c *topicCache) get(name TopicName) (TopicMetadata, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	md, ok := c.byName[name.String()]
	return md, c.gen, ok
}

// put caches md for name unless the cache was invalidated since gen.
func (c *topicCache) put(gen uint64, name TopicName, md TopicMetadata) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.byName == nil || len(c.byName) >= maxCachedTopics {
		c.byName = map[string]TopicMetadata{}
	}
	c.byName[name.String()] = md
}

// invalidate forgets everything.
func (c *topicCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.byName = nil
}
