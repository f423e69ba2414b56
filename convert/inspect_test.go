package convert

import (
	"bytes"
	"testing"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// Inspect gives the Kafka view of either format as the Kafka read path
// does, and a Pulsar view whose message count, ids and payloads match.
func TestInspectBothFormats(t *testing.T) {
	msgs := []Message{
		{Key: []byte("k1"), Value: []byte(`{"a":1}`), Timestamp: 1700000000000, Headers: []Header{{Key: "h", Value: []byte("v")}}},
		{Key: nil, Value: nil, Timestamp: 1700000000001},
	}
	for _, tc := range []struct {
		name  string
		entry *broker.Entry
	}{
		{"kafka", kafkaEntry(t, msgs, 0, 40)},
		{"pulsar batch", pulsarEntry(t, msgs, pb.CompressionType_NONE, false, 40)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.entry.Position = broker.Position{LedgerID: 3, EntryID: 9}
			got, err := Inspect(tc.entry, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("%d messages", len(got))
			}
			kafkaMsgs := make([]Message, len(got))
			for i, m := range got {
				kafkaMsgs[i] = m.Kafka
				if m.Offset != 40+int64(i) || m.Pulsar.LedgerID != 3 || m.Pulsar.EntryID != 9 || m.Pulsar.BatchIndex != int32(i) {
					t.Errorf("message %d: offset %d id %d:%d:%d", i, m.Offset, m.Pulsar.LedgerID, m.Pulsar.EntryID, m.Pulsar.BatchIndex)
				}
			}
			equalMsgs(t, msgs, kafkaMsgs)
			p0, p1 := got[0].Pulsar, got[1].Pulsar
			if p0.Key != "k1" || !p0.HasKey || !bytes.Equal(p0.Payload, []byte(`{"a":1}`)) || p0.EventTime != 1700000000000 {
				t.Errorf("pulsar view of message 0: %+v", p0)
			}
			if len(p0.Properties) == 0 || p0.Properties[0].Key != "h" || string(p0.Properties[0].Value) != "v" {
				t.Errorf("properties %+v", p0.Properties)
			}
			if p1.HasKey || !p1.NullValue {
				t.Errorf("pulsar view of message 1: %+v", p1)
			}
		})
	}
	if _, err := Inspect(&broker.Entry{Format: broker.FormatKafka, Data: []byte("junk"), MsgCount: 1}, 0); err == nil {
		t.Error("junk entry inspected without error")
	}
}
