package pulsar

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/protocol"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// FuzzDecode feeds arbitrary bytes to the frame decoder: it must never
// panic nor allocate beyond the frame limit.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0})
	// A MESSAGE as the broker sends it, with broker entry metadata.
	stored := encodeStored(&pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1),
		PublishTime: proto.Uint64(2), NumMessagesInBatch: proto.Int32(1)}, []byte("payload"))
	msg, _ := appendFrame(nil, &pb.BaseCommand{Type: pb.BaseCommand_MESSAGE.Enum(), Message: &pb.CommandMessage{
		ConsumerId: proto.Uint64(1), MessageId: wireID(broker.Position{LedgerID: 3, EntryID: 4})}},
		&pb.BrokerEntryMetadata{BrokerTimestamp: proto.Uint64(5), Index: proto.Uint64(6)}, stored)
	f.Add(msg)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			body, err := readFrame(r, 1<<20, nil)
			if err != nil {
				return
			}
			cmd, payload, err := parseFrame(body)
			if err != nil {
				continue
			}
			if len(payload) > 0 {
				parsePayload(payload)
			}
			_ = cmd.GetType()
		}
	})
}

// FuzzConn serves arbitrary bytes, delivered in chunks, on a live
// connection of a real broker: whatever arrives, the handler must not
// panic, and the connection must end.
func FuzzConn(f *testing.F) {
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0}, uint8(3))
	store := metadata.NewMemory()
	ledgers, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: store})
	if err != nil {
		f.Fatal(err)
	}
	b, err := broker.New(context.Background(), broker.Options{Store: store, Ledgers: ledgers, Logger: testLogger()})
	if err != nil {
		f.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.MaxMessageSize = 1 << 20
	h, err := New(protocol.Env{Broker: b, Logger: testLogger()}, cfg)
	if err != nil {
		f.Fatal(err)
	}
	h.mu.advertise = "127.0.0.1:1"
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		client, srv := net.Pipe()
		c := newConn(h, srv)
		done := make(chan struct{})
		go func() {
			c.serve()
			close(done)
		}()
		go func() { // drain replies
			buf := make([]byte, 4096)
			for {
				if _, err := client.Read(buf); err != nil {
					return
				}
			}
		}()
		step := int(chunk)%64 + 1
		for i := 0; i < len(data); i += step {
			client.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := client.Write(data[i:min(i+step, len(data))]); err != nil {
				break
			}
		}
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			os.WriteFile(filepath.Join(os.TempDir(), "fuzzconn-hang.txt"), buf, 0o644)
			t.Fatal("connection did not end")
		}
	})
}

// recordingListener tees every byte clients send.
type recordingListener struct {
	net.Listener
	mu  sync.Mutex
	all []*bytes.Buffer
}

type teeConn struct {
	net.Conn
	l   *recordingListener
	buf *bytes.Buffer
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.buf.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

func (l *recordingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := &bytes.Buffer{}
	l.all = append(l.all, b)
	return &teeConn{Conn: nc, l: l, buf: b}, nil
}

// TestWriteFuzzCorpus records what pulsar-client-go sends during a produce
// and consume session and writes it as seed corpus (run with
// PULSAR_WRITE_CORPUS=1; the result is committed under testdata/fuzz).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("PULSAR_WRITE_CORPUS") == "" {
		t.Skip("set PULSAR_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	s := startServer(t)
	s.h.Close(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingListener{Listener: ln}
	h, err := New(protocol.Env{Broker: s.broker, Logger: testLogger()}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	go h.Serve(context.Background(), rec)
	defer h.Close(context.Background())
	s.url = "pulsar://" + ln.Addr().String()

	c := s.client(t)
	topic := newTopic("corpus")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", EnableBatchIndexAcknowledgment: true})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, CompressionType: pulsar.LZ4})
	produce(t, p, 5, "seed")
	for i, m := range receive(t, cons, 5, false) {
		if i%2 == 0 {
			cons.Ack(m)
		} else {
			cons.Nack(m)
		}
	}
	cons.Seek(pulsar.EarliestMessageID())
	time.Sleep(300 * time.Millisecond)
	c.Close()
	time.Sleep(100 * time.Millisecond)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	write := func(target, name string, args ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		os.MkdirAll(dir, 0o755)
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case uint8:
				fmt.Fprintf(&b, "byte(%d)\n", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for ci, stream := range rec.all {
		data := stream.Bytes()
		write("FuzzConn", fmt.Sprintf("session-%d", ci), data, uint8(7))
		for len(data) >= 4 {
			size := int(binary.BigEndian.Uint32(data))
			if size+4 > len(data) {
				break
			}
			write("FuzzDecode", fmt.Sprintf("frame-%d-%03d", ci, n), data[:size+4])
			n++
			data = data[size+4:]
		}
	}
	t.Logf("wrote %d sessions, %d frames", len(rec.all), n)
}
