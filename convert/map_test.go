package convert

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// Every Pulsar client API hands an application the properties as a map
// (pulsar-client-go Message.Properties(), Java getProperties()) and
// publishes a map: one value per key, in the map's order. These tests put
// converted messages through exactly that before converting back.

// throughMap is a Pulsar application reading every message of a stored
// Pulsar batch payload and republishing it unchanged: properties become a
// map (a later repetition of a key replaces an earlier one, as the clients
// build it) and go back on the wire in a random order.
func throughMap(t testing.TB, r *rand.Rand, stored []byte) []byte {
	t.Helper()
	md, body := splitPulsar(t, stored)
	if md.Compression != nil {
		t.Fatal("throughMap needs an uncompressed batch")
	}
	var out []byte
	for len(body) > 0 {
		n := binary.BigEndian.Uint32(body)
		smm := &pb.SingleMessageMetadata{}
		if err := proto_Unmarshal(body[4:4+n], smm); err != nil {
			t.Fatal(err)
		}
		body = body[4+n:]
		payload := body[:smm.GetPayloadSize()]
		body = body[smm.GetPayloadSize():]
		smm.Properties = mapProperties(r, smm.Properties)
		b, err := proto_Marshal(smm)
		if err != nil {
			t.Fatal(err)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(append(out, b...), payload...)
	}
	md.UncompressedSize = new(uint32)
	*md.UncompressedSize = uint32(len(out))
	return encodePulsarStored(md, out)
}

// mapProperties is what a client's map does to a property list.
func mapProperties(r *rand.Rand, kvs []*pb.KeyValue) []*pb.KeyValue {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	var out []*pb.KeyValue
	for k, v := range m {
		out = append(out, &pb.KeyValue{Key: &k, Value: &v})
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// equalThroughMap compares headers after a trip through a map: exactly
// when a key repeats (the order is listed then), else per key (a map keeps
// no order between distinct keys; each key has one value).
func equalThroughMap(t testing.TB, want, got []Message) {
	t.Helper()
	want, got = slices.Clone(want), slices.Clone(got)
	for i := range want {
		if i < len(got) && !repeats(want[i].Headers) {
			want[i].Headers = sortedHeaders(want[i].Headers)
			got[i].Headers = sortedHeaders(got[i].Headers)
		}
	}
	equalMsgs(t, want, got)
}

func repeats(hs []Header) bool {
	for i, h := range hs {
		for _, o := range hs[:i] {
			if o.Key == h.Key {
				return true
			}
		}
	}
	return false
}

func sortedHeaders(hs []Header) []Header {
	hs = slices.Clone(hs)
	slices.SortStableFunc(hs, func(a, b Header) int { return strings.Compare(a.Key, b.Key) })
	return hs
}

// TestKafkaPulsarMapKafka: Kafka records converted for a Pulsar consumer,
// republished by it through a properties map, read by Kafka: every header
// arrives, repeated keys with all their values in order.
func TestKafkaPulsarMapKafka(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 7, 1000} {
		msgs := randKafka(r, n)
		e := kafkaEntry(t, msgs, kafkaNone, 42)
		p, err := KafkaToPulsar(e)
		if err != nil {
			t.Fatal(err)
		}
		republished := throughMap(t, r, p)
		got, err := decodePulsar(republished)
		if err != nil {
			t.Fatal(err)
		}
		equalThroughMap(t, msgs, got)
		k, err := PulsarToKafka(&broker.Entry{Format: broker.FormatPulsar, MsgCount: e.MsgCount, FirstIndex: 42, PublishTime: e.PublishTime, Data: republished})
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeKafka(k)
		if err != nil {
			t.Fatal(err)
		}
		equalThroughMap(t, msgs, back)
	}
}

// TestRepeatedHeadersThroughMap pins the example of docs/interop.md: h=one,
// h=two read as a map holds h=two and __kafka_rep.0.h=one, and comes back
// to Kafka as h=one, h=two.
func TestRepeatedHeadersThroughMap(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	msgs := []Message{{Value: []byte("v"), Timestamp: 1_700_000_000_000,
		Headers: []Header{{"h", []byte("one")}, {"x", []byte("y")}, {"h", []byte("two")}}}}
	p, err := KafkaToPulsar(kafkaEntry(t, msgs, kafkaNone, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, body := splitPulsar(t, p)
	smm := &pb.SingleMessageMetadata{}
	if err := proto_Unmarshal(body[4:4+binary.BigEndian.Uint32(body)], smm); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range smm.Properties {
		m[kv.GetKey()] = kv.GetValue()
	}
	want := map[string]string{"h": "two", "__kafka_rep.0.h": "one", "x": "y", "__kafka_order": "h,x,h"}
	if len(m) != len(want) {
		t.Fatalf("map view %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Fatalf("map view %v, want %v", m, want)
		}
	}
	for range 10 {
		got, err := decodePulsar(throughMap(t, r, p))
		if err != nil {
			t.Fatal(err)
		}
		equalMsgs(t, msgs, got)
	}
}

// TestMapEditedByApplication: what a Pulsar application changes in the
// map before republishing is what Kafka sees. A new property is a header
// after the listed ones; a changed last value is the new last value; a
// removed derived key leaves the order list unusable and the headers in
// wire order.
func TestMapEditedByApplication(t *testing.T) {
	hdrs := []Header{{"h", []byte("one")}, {"h", []byte("two")}}
	props := func(kv ...string) []rawKV {
		var out []rawKV
		for i := 0; i < len(kv); i += 2 {
			out = append(out, rawKV{[]byte(kv[i]), []byte(kv[i+1])})
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		props []rawKV
		want  []Header
	}{
		{"as converted", props("h", "two", "__kafka_order", "h,h", "__kafka_rep.0.h", "one"), hdrs},
		{"added", props("new", "1", "h", "two", "__kafka_order", "h,h", "__kafka_rep.0.h", "one"),
			[]Header{{"h", []byte("one")}, {"h", []byte("two")}, {"new", []byte("1")}}},
		{"changed", props("h", "three", "__kafka_rep.0.h", "one", "__kafka_order", "h,h"),
			[]Header{{"h", []byte("one")}, {"h", []byte("three")}}},
		{"derived removed", props("h", "two", "__kafka_order", "h,h"), []Header{{"h", []byte("two")}}},
		{"order removed", props("__kafka_rep.0.h", "one", "h", "two"), hdrs},
		{"not a derived key", props("__kafka_rep.x.h", "one"), []Header{{"__kafka_rep.x.h", []byte("one")}}},
	} {
		got, _, _ := decodeProps(tc.props)
		if !slices.EqualFunc(got, tc.want, func(a, b Header) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// FuzzHeadersThroughMap: any header list (keys from a small alphabet, so
// that they repeat; values UTF-8, binary or null) encoded as properties,
// put through a map in any order and decoded, is the same list: exactly
// when a key repeats, per key otherwise.
func FuzzHeadersThroughMap(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 1, 3}, uint64(1))
	f.Add([]byte("hhhhxxyy\xff\x00"), uint64(2))
	f.Add([]byte{5, 5, 5, 6, 7, 8, 0xfe, 0xff}, uint64(3))
	keys := []string{"h", "x", "", "__kafka_b64", "__kafka_order", "__kafka_rep.0.h", "\xff", "a,b#c", "X19rYWZrYV9iNjQ="}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		var hs []Header
		for i := 0; i+1 < len(data) && len(hs) < 64; i += 2 {
			h := Header{Key: keys[int(data[i])%len(keys)]}
			switch v := data[i+1]; {
			case v%7 == 0:
				h.Value = nil
			case v%7 == 1:
				h.Value = []byte{v, 0xff}
			default:
				h.Value = []byte(strings.Repeat("v", int(v%5)))
			}
			hs = append(hs, h)
		}
		msg := Message{Value: []byte{}, Timestamp: 1, Headers: hs}
		smm := appendProps(nil, &msg, false)
		var s single
		if err := s.decode(smm); err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(seed, seed>>1))
		var m = map[string][]byte{}
		for _, kv := range s.props {
			m[string(kv.k)] = kv.v
		}
		if len(m) != len(s.props) {
			t.Fatalf("property keys repeat: %q", s.props)
		}
		var props []rawKV
		for k, v := range m {
			props = append(props, rawKV{[]byte(k), v})
		}
		r.Shuffle(len(props), func(i, j int) { props[i], props[j] = props[j], props[i] })
		got, _, _ := decodeProps(props)
		want := hs
		if !repeats(hs) {
			want, got = sortedHeaders(hs), sortedHeaders(got)
		}
		if len(want) == 0 {
			want = nil
		}
		if len(got) == 0 {
			got = nil
		}
		if !slices.EqualFunc(got, want, func(a, b Header) bool {
			return a.Key == b.Key && (a.Value == nil) == (b.Value == nil) && string(a.Value) == string(b.Value)
		}) {
			t.Fatalf("headers %q\nthrough a map: %q", want, got)
		}
	})
}
