package admin

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/http"
	"testing"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// storedBatch builds a Pulsar batch entry as a producer sends it (from the 0x0e01 magic on).
func storedBatch(t *testing.T, payloads ...string) []byte {
	t.Helper()
	var body []byte
	for i, p := range payloads {
		smd, err := proto.Marshal(&pb.SingleMessageMetadata{
			PayloadSize: proto.Int32(int32(len(p))),
			Properties:  []*pb.KeyValue{{Key: proto.String("i"), Value: proto.String(string(rune('0' + i)))}},
		})
		if err != nil {
			t.Fatal(err)
		}
		body = binary.BigEndian.AppendUint32(body, uint32(len(smd)))
		body = append(body, smd...)
		body = append(body, p...)
	}
	md, err := proto.Marshal(&pb.MessageMetadata{
		ProducerName: proto.String("p"), SequenceId: proto.Uint64(0), PublishTime: proto.Uint64(1700000000000),
		NumMessagesInBatch: proto.Int32(int32(len(payloads))),
	})
	if err != nil {
		t.Fatal(err)
	}
	tail := binary.BigEndian.AppendUint32(nil, uint32(len(md)))
	tail = append(append(tail, md...), body...)
	out := binary.BigEndian.AppendUint16(nil, 0x0e01)
	out = binary.BigEndian.AppendUint32(out, crc32.Checksum(tail, crc32.MakeTable(crc32.Castagnoli)))
	return append(out, tail...)
}

// pulsar-client-go's TestMultiTopicGetLastMessageIDs reads entries back
// with pulsaradmin's Subscriptions().GetMessagesByID.
func TestGetMessagesByID(t *testing.T) {
	srv, b := newTestServer(t)
	ctx := context.Background()
	client, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	name, _ := broker.ParseTopicName("public/default/bymsgid", "", "")
	p, err := b.OpenPartition(ctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Append(ctx, broker.AppendRequest{Format: broker.FormatPulsar, MsgCount: 2, Data: storedBatch(t, "hello", "world")})
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := utils.GetTopicName("persistent://public/default/bymsgid")
	msgs, err := client.Subscriptions().GetMessagesByID(*tn, r.Entry.Position.LedgerID, r.Entry.Position.EntryID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || string(msgs[0].Payload) != "hello" || string(msgs[1].Payload) != "world" {
		t.Fatalf("messages %+v", msgs)
	}
	if id := msgs[1].GetMessageID(); id.LedgerID != r.Entry.Position.LedgerID || id.EntryID != r.Entry.Position.EntryID || id.BatchIndex != 1 {
		t.Fatalf("id %+v", id)
	}
	if msgs[1].Properties["i"] != "1" {
		t.Fatalf("properties %v", msgs[1].Properties)
	}
	_, err = client.Subscriptions().GetMessagesByID(*tn, 1024, 2048)
	var re rest.Error
	if !errors.As(err, &re) || re.Code != http.StatusNotFound {
		t.Fatalf("missing entry: %v", err)
	}
}
