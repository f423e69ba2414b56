package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig() *sarama.Config {
	return saramaConfigVersion(sarama.V2_8_0_0)
}

func saramaConfigVersion(v sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = v
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1 // sarama requires it for idempotence
	cfg.Producer.Compression = sarama.CompressionZSTD
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond // short long polls: quick Close
	return cfg
}

func TestSaramaProduceConsume(t *testing.T) {
	// The 2.1 baseline, 2.8 (this handler's maxima)
	// and a 3.x version, which must settle on what ApiVersions advertises.
	for _, v := range []sarama.KafkaVersion{sarama.V2_1_0_0, sarama.V2_8_0_0, sarama.V3_6_0_0} {
		t.Run(v.String(), func(t *testing.T) { testSaramaProduceConsume(t, saramaConfigVersion(v)) })
	}
}

func testSaramaProduceConsume(t *testing.T, cfg *sarama.Config) {
	s := startServer(t)
	p, err := sarama.NewSyncProducer([]string{s.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 20
	for i := range n {
		part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: "sarama", Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		if part != 0 || off != int64(i) {
			t.Fatalf("message %d at %d/%d", i, part, off)
		}
	}
	c, err := sarama.NewConsumer([]string{s.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition("sarama", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	timeout := time.After(10 * time.Second)
	for i := range n {
		select {
		case m := <-pc.Messages():
			if m.Offset != int64(i) || string(m.Value) != fmt.Sprintf("v%d", i) {
				t.Fatalf("got %d %q", m.Offset, m.Value)
			}
		case err := <-pc.Errors():
			t.Fatal(err)
		case <-timeout:
			t.Fatalf("timed out after %d messages", i)
		}
	}
	if hw := pc.HighWaterMarkOffset(); hw != n {
		t.Fatalf("high watermark %d", hw)
	}
}

func TestSaramaAdmin(t *testing.T) {
	s := startServer(t)
	adm, err := sarama.NewClusterAdmin([]string{s.addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	retention := "60000"
	if err := adm.CreateTopic("sadm", &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1, ConfigEntries: map[string]*string{"retention.ms": &retention}}, false); err != nil {
		t.Fatal(err)
	}
	topics, err := adm.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := topics["sadm"]; !ok || d.NumPartitions != 2 {
		t.Fatalf("list: %+v", topics)
	}
	entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: "sadm"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Name == "retention.ms" && e.Value == "60000" {
			found = true
		}
	}
	if !found {
		t.Fatalf("describe: %+v", entries)
	}
	v := "4096"
	if err := adm.IncrementalAlterConfig(sarama.TopicResource, "sadm", map[string]sarama.IncrementalAlterConfigsEntry{"segment.bytes": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v}}, false); err != nil {
		t.Fatal(err)
	}
	if err := adm.CreatePartitions("sadm", 4, nil, false); err != nil {
		t.Fatal(err)
	}
	md, err := adm.DescribeTopics([]string{"sadm"})
	if err != nil || len(md) != 1 || len(md[0].Partitions) != 4 {
		t.Fatalf("describe topics: %v %+v", err, md)
	}
	brokers, ctrl, err := adm.DescribeCluster()
	if err != nil || len(brokers) != 1 || ctrl != 0 {
		t.Fatalf("describe cluster: %v %v %v", brokers, ctrl, err)
	}
	if err := adm.DeleteTopic("sadm"); err != nil {
		t.Fatal(err)
	}
}
