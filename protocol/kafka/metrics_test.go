package kafka

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkCountErrors measures the per-response cost of counting error
// codes, which every request pays: a Produce response (walked by type) and
// a Metadata response (walked by reflection), each of 10 topics x 10
// partitions without errors.
func BenchmarkCountErrors(b *testing.B) {
	produce := kmsg.NewPtrProduceResponse()
	metadata := kmsg.NewPtrMetadataResponse()
	for range 10 {
		pt := kmsg.NewProduceResponseTopic()
		mt := kmsg.NewMetadataResponseTopic()
		for p := range int32(10) {
			pp := kmsg.NewProduceResponseTopicPartition()
			pp.Partition = p
			pt.Partitions = append(pt.Partitions, pp)
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition, mp.Replicas, mp.ISR = p, []int32{0}, []int32{0}
			mt.Partitions = append(mt.Partitions, mp)
		}
		produce.Topics = append(produce.Topics, pt)
		metadata.Topics = append(metadata.Topics, mt)
	}
	m := newMetrics(nil)
	for _, c := range []struct {
		name string
		resp kmsg.Response
	}{{"Produce", produce}, {"Metadata", metadata}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.countErrors(c.name, c.resp)
			}
		})
	}
}

// TestCountErrors: error codes are counted per API and error name, from
// the typed Produce path and from nested fields by reflection.
func TestCountErrors(t *testing.T) {
	m := newMetrics(nil)
	produce := kmsg.NewPtrProduceResponse()
	pt := kmsg.NewProduceResponseTopic()
	for _, code := range []int16{0, kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicOrPartition.Code} {
		pp := kmsg.NewProduceResponseTopicPartition()
		pp.ErrorCode = code
		pt.Partitions = append(pt.Partitions, pp)
	}
	produce.Topics = append(produce.Topics, pt)
	m.countErrors("Produce", produce)
	offsets := kmsg.NewPtrOffsetFetchResponse()
	g := kmsg.NewOffsetFetchResponseGroup()
	g.ErrorCode = kerr.GroupIDNotFound.Code
	gt := kmsg.NewOffsetFetchResponseGroupTopic()
	gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
	gp.ErrorCode = kerr.UnknownTopicOrPartition.Code
	gt.Partitions = append(gt.Partitions, gp)
	g.Topics = append(g.Topics, gt)
	offsets.Groups = append(offsets.Groups, g)
	m.countErrors("OffsetFetch", offsets)
	for _, c := range []struct {
		api, err string
		want     float64
	}{
		{"Produce", "UNKNOWN_TOPIC_OR_PARTITION", 2},
		{"OffsetFetch", "GROUP_ID_NOT_FOUND", 1},
		{"OffsetFetch", "UNKNOWN_TOPIC_OR_PARTITION", 1},
		{"Produce", "NONE", 0},
	} {
		var got dto.Metric
		if err := m.errors.WithLabelValues(c.api, c.err).Write(&got); err != nil {
			t.Fatal(err)
		}
		if got := got.GetCounter().GetValue(); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.api, c.err, got, c.want)
		}
	}
}
