package server

// Broker metrics with Pulsar's names (pulsar_in_messages_total, ...), read
// at scrape time from the broker's own counters: the numbers the admin
// topic stats answer, never a second count kept in sync.
//
// Labels: cluster, namespace, topic (the full partition name, as Pulsar's
// topic label) for topic series; subscription for subscription series;
// subscription, consumer and consumer_id for consumer series. With
// expose-topic-level-metrics false (Pulsar's
// exposeTopicLevelMetricsInPrometheus) topic series are summed per
// namespace (labels cluster, namespace) and subscription and consumer series
// are not exported, so that the series count does not grow with topics.
//
// One difference from Pulsar: Pulsar also writes pulsar_out_messages_total
// and pulsar_out_bytes_total per subscription and per consumer, with more
// labels under the same name; a Prometheus client cannot (one label set per
// name), so the subscription's are pulsar_subscription_out_messages_total
// and pulsar_subscription_out_bytes_total. Producer series
// (pulsar_producer_msg_rate_in, ...; labels producer_name, producer_id) are
// the attached Pulsar producers'.
//
// Only loaded partitions are reported (Pulsar: the topics a broker owns).

import (
	"context"
	"io/fs"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kopernik-io/kopernik/broker"
)

type metricKind int

const (
	topicLevel metricKind = iota
	subscriptionLevel
	consumerLevel
	producerLevel
)

type metricDef struct {
	name, help string
	kind       metricKind
	counter    bool
}

// Indexes into brokerCollector.descs, in the order of metricDefs.
const (
	mSubscriptions = iota
	mProducers
	mConsumers
	mRateIn
	mRateOut
	mThroughputIn
	mThroughputOut
	mInBytes
	mInMessages
	mOutBytes
	mOutMessages
	mStorageSize
	mMsgBacklog
	mLedgers
	mSubBacklog
	mSubBacklogNoDelayed
	mSubUnacked
	mSubRateOut
	mSubThroughputOut
	mSubOutMessages
	mSubOutBytes
	mSubConsumers
	mConsPermits
	mConsUnacked
	mConsRateOut
	mConsThroughputOut
	mProdRateIn
	mProdThroughputIn
)

var metricDefs = []metricDef{
	mSubscriptions:       {"pulsar_subscriptions_count", "Subscriptions (Pulsar subscriptions and Kafka groups' commits).", topicLevel, false},
	mProducers:           {"pulsar_producers_count", "Attached producers of either protocol.", topicLevel, false},
	mConsumers:           {"pulsar_consumers_count", "Consumers attached to subscriptions (Pulsar consumers, Kafka group members).", topicLevel, false},
	mRateIn:              {"pulsar_rate_in", "Messages appended per second (last window of at least 5 s).", topicLevel, false},
	mRateOut:             {"pulsar_rate_out", "Messages sent to consumers per second (last window of at least 5 s).", topicLevel, false},
	mThroughputIn:        {"pulsar_throughput_in", "Bytes appended per second.", topicLevel, false},
	mThroughputOut:       {"pulsar_throughput_out", "Bytes sent to consumers per second.", topicLevel, false},
	mInBytes:             {"pulsar_in_bytes_total", "Bytes appended (duplicates excluded) since the partition was loaded.", topicLevel, true},
	mInMessages:          {"pulsar_in_messages_total", "Messages appended (duplicates excluded) since the partition was loaded.", topicLevel, true},
	mOutBytes:            {"pulsar_out_bytes_total", "Bytes (as stored) sent to consumers of either protocol since the partition was loaded.", topicLevel, true},
	mOutMessages:         {"pulsar_out_messages_total", "Messages sent to consumers of either protocol (Kafka fetches, Pulsar consumers and readers).", topicLevel, true},
	mStorageSize:         {"pulsar_storage_size", "Stored bytes of the retained ledgers.", topicLevel, false},
	mMsgBacklog:          {"pulsar_msg_backlog", "Messages not yet acknowledged, summed over subscriptions.", topicLevel, false},
	mLedgers:             {"kopernik_storage_ledgers", "Retained ledgers (segment files).", topicLevel, false},
	mSubBacklog:          {"pulsar_subscription_back_log", "Messages not yet acknowledged (for a Kafka group: its lag).", subscriptionLevel, false},
	mSubBacklogNoDelayed: {"pulsar_subscription_back_log_no_delayed", "The backlog without delayed messages (kopernik: the same as the backlog).", subscriptionLevel, false},
	mSubUnacked:          {"pulsar_subscription_unacked_messages", "Messages delivered to the subscription's consumers and not acknowledged.", subscriptionLevel, false},
	mSubRateOut:          {"pulsar_subscription_msg_rate_out", "Messages dispatched per second (last window of at least 5 s).", subscriptionLevel, false},
	mSubThroughputOut:    {"pulsar_subscription_msg_throughput_out", "Bytes dispatched per second.", subscriptionLevel, false},
	mSubOutMessages:      {"pulsar_subscription_out_messages_total", "Messages dispatched to the subscription's Pulsar consumers.", subscriptionLevel, true},
	mSubOutBytes:         {"pulsar_subscription_out_bytes_total", "Bytes dispatched to the subscription's Pulsar consumers.", subscriptionLevel, true},
	mSubConsumers:        {"pulsar_subscription_consumers_count", "Consumers attached (Pulsar consumers, Kafka group members).", subscriptionLevel, false},
	mConsPermits:         {"pulsar_consumer_available_permits", "Messages the consumer may still be sent (FLOW permits).", consumerLevel, false},
	mConsUnacked:         {"pulsar_consumer_unacked_messages", "Messages delivered to the consumer and not acknowledged.", consumerLevel, false},
	mConsRateOut:         {"pulsar_consumer_msg_rate_out", "Messages delivered per second.", consumerLevel, false},
	mConsThroughputOut:   {"pulsar_consumer_msg_throughput_out", "Bytes delivered per second.", consumerLevel, false},
	mProdRateIn:          {"pulsar_producer_msg_rate_in", "Messages appended per second by the (Pulsar) producer.", producerLevel, false},
	mProdThroughputIn:    {"pulsar_producer_msg_throughput_in", "Bytes appended per second by the (Pulsar) producer.", producerLevel, false},
}

// Compaction series, exported for the partitions that compact (policies
// say so, or a compaction ran since the partition was loaded), as Pulsar
// exports its pulsar_compaction_* only for compacted topics. Indexes into
// brokerCollector.compaction, in the order of compactionDefs.
const (
	cSucceeded = iota
	cFailed
	cRemoved
	cDuration
	cBytesIn
	cBytesOut
	cReleased
	cEntries
	cSize
	cCleaned // per topic only: a sum of offsets means nothing
)

var compactionDefs = []metricDef{
	cSucceeded: {"pulsar_compaction_succeed_count", "Compaction runs that published a new view since the partition was loaded.", topicLevel, true},
	cFailed:    {"pulsar_compaction_failed_count", "Compaction runs that failed since the partition was loaded.", topicLevel, true},
	cRemoved:   {"pulsar_compaction_removed_event_count", "Records compaction left out (superseded, expired tombstones, aborted, keyless), each counted once.", topicLevel, true},
	cDuration:  {"pulsar_compaction_duration_time_in_mills", "Milliseconds spent in compaction runs that published a view.", topicLevel, true},
	cBytesIn:   {"kopernik_compaction_bytes_in_total", "Entry bytes compaction runs read (the previous view and the raw log): the size before.", topicLevel, true},
	cBytesOut:  {"kopernik_compaction_bytes_out_total", "Entry bytes compaction runs wrote into new views: the size after.", topicLevel, true},
	cReleased:  {"kopernik_compaction_released_bytes_total", "Bytes of raw ledgers released after compactions (cleanup.policy compact).", topicLevel, true},
	cEntries:   {"pulsar_compaction_compacted_entries_count", "Entries of the current compacted view.", topicLevel, false},
	cSize:      {"pulsar_compaction_compacted_entries_size", "Bytes of the current compacted view's file.", topicLevel, false},
	cCleaned:   {"kopernik_compaction_cleaned_offset", "The current view's cleaned point: the offset below which readers read the view.", topicLevel, false},
}

// compactionValues is one partition's (or a namespace's summed)
// compaction series.
type compactionValues [cCleaned + 1]float64

// brokerCollector exports the broker's partition, subscription and
// consumer statistics.
type brokerCollector struct {
	b          *broker.Broker
	cluster    string
	perTopic   bool
	descs      []*prometheus.Desc
	compaction []*prometheus.Desc
	topics     *prometheus.Desc // pulsar_topics_count, per namespace
}

func newBrokerCollector(b *broker.Broker, cluster string, perTopic bool) *brokerCollector {
	c := &brokerCollector{b: b, cluster: cluster, perTopic: perTopic}
	for _, d := range metricDefs {
		labels := []string{"cluster", "namespace"}
		if perTopic {
			labels = append(labels, "topic")
			switch d.kind {
			case subscriptionLevel:
				labels = append(labels, "subscription")
			case consumerLevel:
				labels = append(labels, "subscription", "consumer", "consumer_id")
			case producerLevel:
				labels = append(labels, "producer_name", "producer_id")
			}
		}
		c.descs = append(c.descs, prometheus.NewDesc(d.name, d.help, labels, nil))
	}
	labels := []string{"cluster", "namespace"}
	if perTopic {
		labels = append(labels, "topic")
	}
	for i, d := range compactionDefs {
		if i == cCleaned && !perTopic {
			c.compaction = append(c.compaction, nil)
			continue
		}
		c.compaction = append(c.compaction, prometheus.NewDesc(d.name, d.help, labels, nil))
	}
	c.topics = prometheus.NewDesc("pulsar_topics_count", "Loaded topic partitions.", []string{"cluster", "namespace"}, nil)
	return c
}

// Describe implements prometheus.Collector.
func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for i, d := range metricDefs {
		if c.perTopic || d.kind == topicLevel {
			ch <- c.descs[i]
		}
	}
	for _, d := range c.compaction {
		if d != nil {
			ch <- d
		}
	}
	ch <- c.topics
}

// topicValues is one partition's (or, summed, one namespace's) topic series.
type topicValues [mLedgers + 1]float64

// Collect implements prometheus.Collector.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	byNS := map[string]*topicValues{}
	compactionByNS := map[string]*compactionValues{}
	topics := map[string]int{}
	var order, compactionOrder []string
	for _, p := range c.b.Partitions() {
		ns := p.Name().NamespaceName()
		var v topicValues
		c.partition(ctx, ch, p, &v)
		topics[ns]++
		cv, compacting := compactionOf(p)
		if c.perTopic {
			c.emit(ch, &v, c.cluster, ns, p.Name().String())
			if compacting {
				c.emitCompaction(ch, &cv, c.cluster, ns, p.Name().String())
			}
			continue
		}
		sum := byNS[ns]
		if sum == nil {
			sum = &topicValues{}
			byNS[ns] = sum
			order = append(order, ns)
		}
		for i := range v {
			sum[i] += v[i]
		}
		if compacting {
			csum := compactionByNS[ns]
			if csum == nil {
				csum = &compactionValues{}
				compactionByNS[ns] = csum
				compactionOrder = append(compactionOrder, ns)
			}
			for i := range cv {
				csum[i] += cv[i]
			}
		}
	}
	for _, ns := range order {
		c.emit(ch, byNS[ns], c.cluster, ns)
	}
	for _, ns := range compactionOrder {
		c.emitCompaction(ch, compactionByNS[ns], c.cluster, ns)
	}
	for ns, n := range topics {
		ch <- prometheus.MustNewConstMetric(c.topics, prometheus.GaugeValue, float64(n), c.cluster, ns)
	}
}

func (c *brokerCollector) emit(ch chan<- prometheus.Metric, v *topicValues, labels ...string) {
	for i := range v {
		c.metric(ch, i, v[i], labels...)
	}
}

// compactionOf returns p's compaction series, and whether p compacts
// (its policies say so, or a compaction ran since it was loaded).
func compactionOf(p *broker.Partition) (v compactionValues, compacting bool) {
	if !p.Policies().Compacting() && !p.CompactionRan() {
		return v, false
	}
	st := p.CompactionStatus()
	t := st.Totals
	v[cSucceeded], v[cFailed], v[cRemoved] = float64(t.Compacted), float64(t.Failed), float64(t.RecordsRemoved)
	v[cDuration] = float64(t.Duration.Milliseconds())
	v[cBytesIn], v[cBytesOut], v[cReleased] = float64(t.BytesIn), float64(t.BytesOut), float64(t.Released)
	v[cEntries], v[cSize], v[cCleaned] = float64(st.ViewEntries), float64(st.ViewBytes), float64(st.Cleaned)
	return v, true
}

func (c *brokerCollector) emitCompaction(ch chan<- prometheus.Metric, v *compactionValues, labels ...string) {
	for i, d := range c.compaction {
		if d == nil {
			continue
		}
		t := prometheus.GaugeValue
		if compactionDefs[i].counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(d, t, v[i], labels...)
	}
}

func (c *brokerCollector) metric(ch chan<- prometheus.Metric, i int, v float64, labels ...string) {
	t := prometheus.GaugeValue
	if metricDefs[i].counter {
		t = prometheus.CounterValue
	}
	ch <- prometheus.MustNewConstMetric(c.descs[i], t, v, labels...)
}

// partition fills v with p's topic values and, per topic, sends its
// subscription and consumer series.
func (c *brokerCollector) partition(ctx context.Context, ch chan<- prometheus.Metric, p *broker.Partition, v *topicValues) {
	st := p.Stats()
	in, inBytes := p.InCounters()
	out, outBytes := p.OutCounters()
	v[mInMessages], v[mInBytes] = float64(in), float64(inBytes)
	v[mOutMessages], v[mOutBytes] = float64(out), float64(outBytes)
	v[mRateIn], v[mThroughputIn] = p.InRates()
	v[mRateOut], v[mThroughputOut] = p.OutRates()
	v[mStorageSize], v[mLedgers] = float64(st.Bytes), float64(len(st.Ledgers))
	producers := p.Producers()
	v[mProducers] = float64(len(producers))
	topic, ns := p.Name().String(), p.Name().NamespaceName()
	if c.perTopic {
		for i, pi := range producers {
			if pi.Counters == nil {
				continue
			}
			_, _, rate, throughput := pi.Counters.Stats()
			pl := []string{c.cluster, ns, topic, pi.Name, strconv.Itoa(i)}
			c.metric(ch, mProdRateIn, rate, pl...)
			c.metric(ch, mProdThroughputIn, throughput, pl...)
		}
	}
	for _, sub := range p.Subscriptions(ctx) {
		backlog := sub.Cursor().Backlog()
		consumers := sub.Consumers()
		v[mSubscriptions]++
		v[mConsumers] += float64(len(consumers))
		v[mMsgBacklog] += float64(backlog)
		if !c.perTopic {
			continue
		}
		sl := []string{c.cluster, ns, topic, sub.Name()}
		var unacked int64
		for i, ci := range consumers {
			if ci.Dispatch == nil {
				continue
			}
			cst := ci.Dispatch.Stats()
			unacked += cst.Unacked
			cl := append(append([]string{}, sl...), ci.Name, strconv.Itoa(i))
			c.metric(ch, mConsPermits, float64(cst.Permits), cl...)
			c.metric(ch, mConsUnacked, float64(cst.Unacked), cl...)
			c.metric(ch, mConsRateOut, cst.MsgRateOut, cl...)
			c.metric(ch, mConsThroughputOut, cst.ByteRateOut, cl...)
		}
		sOut, sOutBytes := sub.OutCounters()
		sRate, sThroughput := sub.OutRates()
		c.metric(ch, mSubBacklog, float64(backlog), sl...)
		c.metric(ch, mSubBacklogNoDelayed, float64(backlog), sl...)
		c.metric(ch, mSubUnacked, float64(unacked), sl...)
		c.metric(ch, mSubRateOut, sRate, sl...)
		c.metric(ch, mSubThroughputOut, sThroughput, sl...)
		c.metric(ch, mSubOutMessages, float64(sOut), sl...)
		c.metric(ch, mSubOutBytes, float64(sOutBytes), sl...)
		c.metric(ch, mSubConsumers, float64(len(consumers)), sl...)
	}
}

// storageObserver turns managedledger latencies into histograms.
type storageObserver struct {
	append, sync prometheus.Histogram
}

func newStorageObserver() *storageObserver {
	buckets := prometheus.ExponentialBuckets(0.00005, 2, 16) // 50 µs .. ~1.6 s
	return &storageObserver{
		append: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kopernik_storage_append_latency_seconds",
			Help:    "Time from append to durable (fsynced) of each entry, what an acknowledged producer waits for storage (fsync always).",
			Buckets: buckets,
		}),
		sync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kopernik_storage_fsync_latency_seconds",
			Help:    "Time of each group commit: one write of the pending bytes and one fdatasync.",
			Buckets: buckets,
		}),
	}
}

// AppendLatency implements managedledger.Observer.
func (o *storageObserver) AppendLatency(d time.Duration) { o.append.Observe(d.Seconds()) }

// SyncLatency implements managedledger.Observer.
func (o *storageObserver) SyncLatency(d time.Duration) { o.sync.Observe(d.Seconds()) }

// dirBytes is the size of the regular files under dir (0 if it is absent).
func dirBytes(dir string) float64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return float64(n)
}
