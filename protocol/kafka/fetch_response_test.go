package kafka

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchResponseEncoding: the vectored encoder writes exactly what
// kmsg writes for the same response with the pieces in RecordBatches, in
// every served version, contiguous or with splices put back in place, and
// also for responses with fields it leaves to kmsg.
func TestFetchResponseEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for version := int16(4); version <= 12; version++ {
		for iter := range 50 {
			resp := &fetchResponse{FetchResponse: kmsg.NewPtrFetchResponse()}
			resp.Version = version
			resp.ThrottleMillis = rng.Int32N(100)
			resp.ErrorCode = int16(rng.IntN(3))
			resp.SessionID = rng.Int32()
			for ti := range rng.IntN(3) {
				rt := kmsg.NewFetchResponseTopic()
				rt.Topic = string(blob(ti * 7))
				for pi := range rng.IntN(4) {
					rp := kmsg.NewFetchResponseTopicPartition()
					rp.Partition = int32(pi)
					rp.ErrorCode = int16(rng.IntN(2))
					rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = rng.Int64(), rng.Int64(), rng.Int64()
					rp.PreferredReadReplica = rng.Int32N(3) - 1
					if rng.IntN(3) == 0 {
						a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
						a.ProducerID, a.FirstOffset = rng.Int64(), rng.Int64()
						rp.AbortedTransactions = append(rp.AbortedTransactions, a)
					}
					var fr *fetchedRecords
					switch rng.IntN(4) {
					case 0: // null record set
					case 1:
						rp.RecordBatches = []byte{}
					default:
						rp.RecordBatches = blob(rng.IntN(2) * 100)
						fr = &fetchedRecords{}
						for range rng.IntN(4) {
							n := []int{10, minSpliceBytes - 1, minSpliceBytes, 70000}[rng.IntN(4)]
							fr.pieces = append(fr.pieces, blob(n))
							fr.size += n
						}
					}
					if iter%10 == 9 { // a tagged field kmsg encodes (v12)
						rp.DivergingEpoch.Epoch = 3
					}
					rt.Partitions = append(rt.Partitions, rp)
					resp.records = append(resp.records, fr)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			want := resp.flatten().AppendTo(nil)
			if got := resp.AppendTo(nil); !bytes.Equal(got, want) {
				t.Fatalf("v%d iter %d: contiguous encoding differs from kmsg (%d vs %d bytes)", version, iter, len(got), len(want))
			}
			prefix := []byte("prefix")
			frame, splices := resp.appendVectored(prefix, true)
			var got []byte
			at := 0
			for _, s := range splices {
				if len(s.b) < minSpliceBytes {
					t.Fatalf("v%d: spliced a %d byte piece", version, len(s.b))
				}
				got = append(append(got, frame[at:s.at]...), s.b...)
				at = s.at
			}
			got = append(got, frame[at:]...)
			if !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Fatalf("v%d iter %d: vectored encoding differs from kmsg", version, iter)
			}
			// And what the encoder writes decodes back.
			back := kmsg.NewPtrFetchResponse()
			back.Version = version
			if err := back.ReadFrom(want); err != nil {
				t.Fatalf("v%d: decoding: %v", version, err)
			}
		}
	}
}

// TestWriteVectored: frame and splices arrive in order over TCP (writev)
// and over other connections (TLS: through the buffered writer), after
// bytes already buffered.
func TestWriteVectored(t *testing.T) {
	big := func(b byte) []byte { return bytes.Repeat([]byte{b}, 100<<10) }
	frame := []byte("0123456789")
	splices := []splice{{at: 0, b: big('a')}, {at: 4, b: big('b')}, {at: 4, b: big('c')}, {at: 10, b: big('d')}}
	want := slices.Concat([]byte("buffered"), big('a'), frame[:4], big('b'), big('c'), frame[4:], big('d'))

	tcp := func() (net.Conn, net.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return server, client
	}
	for name, pair := range map[string]func() (net.Conn, net.Conn){"tcp": tcp, "pipe": func() (net.Conn, net.Conn) { return net.Pipe() }} {
		t.Run(name, func(t *testing.T) {
			server, client := pair()
			defer server.Close()
			defer client.Close()
			got := make(chan []byte)
			go func() {
				b := make([]byte, len(want))
				_, err := io.ReadFull(client, b)
				if err != nil {
					t.Error(err)
				}
				got <- b
			}()
			c := &conn{nc: server}
			bw := bufio.NewWriterSize(server, 64<<10)
			bw.WriteString("buffered")
			iov, err := c.writeVectored(bw, nil, frame, splices)
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(iov) != 0 || cap(iov) > 0 && iov[:cap(iov)][0] != nil {
				t.Fatal("writeVectored kept references to the buffers it wrote")
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatal("bytes differ from frame with splices in place")
			}
		})
	}
}
