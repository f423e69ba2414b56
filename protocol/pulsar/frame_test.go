package pulsar

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

func TestFrameRoundTrip(t *testing.T) {
	stored := encodeStored(&pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(9),
		PublishTime: proto.Uint64(1), NumMessagesInBatch: proto.Int32(3)}, []byte("data"))
	cmd := &pb.BaseCommand{Type: pb.BaseCommand_MESSAGE.Enum(), Message: &pb.CommandMessage{ConsumerId: proto.Uint64(1)}}
	for _, bem := range []*pb.BrokerEntryMetadata{nil, {Index: proto.Uint64(41)}} {
		f, err := appendFrame(nil, cmd, bem, stored)
		if err != nil {
			t.Fatal(err)
		}
		body, err := readFrame(bufio.NewReader(bytes.NewReader(f)), 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, payload, err := parseFrame(body)
		if err != nil || got.GetMessage().GetConsumerId() != 1 {
			t.Fatalf("command %v %v", got, err)
		}
		s, md, err := parsePayload(payload)
		if err != nil || !bytes.Equal(s, stored) || md.GetNumMessagesInBatch() != 3 {
			t.Fatalf("payload: %v", err)
		}
	}
	// The size limit applies before reading the body.
	f, _ := appendFrame(nil, cmd, nil, stored)
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(f)), 10, nil); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	// A flipped payload byte fails the checksum.
	bad := bytes.Clone(stored)
	bad[len(bad)-1] ^= 1
	if _, _, err := parsePayload(bad); !errors.Is(err, errChecksum) {
		t.Fatalf("corrupt payload: %v", err)
	}
}

func TestServerErrors(t *testing.T) {
	for err, want := range map[error]pb.ServerError{
		broker.ErrTopicNotFound:                     pb.ServerError_TopicNotFound,
		fmt.Errorf("x: %w", broker.ErrProducerBusy): pb.ServerError_ProducerBusy,
		broker.ErrInUse:                             pb.ServerError_ConsumerBusy,
		broker.ErrProducerFenced:                    pb.ServerError_ProducerFenced,
		broker.ErrSubscriptionNotFound:              pb.ServerError_SubscriptionNotFound,
		broker.ErrInvalidName:                       pb.ServerError_InvalidTopicName,
		broker.ErrMessageTooLarge:                   pb.ServerError_NotAllowedError,
		broker.ErrClosed:                            pb.ServerError_ServiceNotReady,
		errChecksum:                                 pb.ServerError_ChecksumError,
		errors.New("something else"):                pb.ServerError_UnknownError,
		fmt.Errorf("%w: v", errIncompatibleSchema):  pb.ServerError_IncompatibleSchema,
	} {
		if got := serverError(err); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
}
