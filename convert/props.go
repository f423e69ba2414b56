package convert

// Kafka headers as Pulsar properties (docs/interop.md, "Headers as
// properties").
//
// Every Pulsar client API hands properties to applications as a map, so a
// message read and republished by a Pulsar application keeps one value per
// key and none of the order. The encoding therefore makes every property
// key unique and says in reserved properties what a map cannot hold:
//
//   - header key k (UTF-8, without the reserved prefix) is property key k;
//     other keys are their base64, listed in __kafka_b64key;
//   - a key that repeats keeps its LAST value under k (what Kafka's
//     Headers.lastHeader returns) and its earlier values under
//     __kafka_rep.<n>.k, n = 0, 1, ... in header order; the headers' keys in
//     order (one entry per header) are then listed in __kafka_order;
//   - a value that is not UTF-8 is its base64, listed in __kafka_b64; a null
//     value is empty, listed in __kafka_null.
//
// Decoding undoes it whatever order the properties come in. A property the
// lists do not account for (one a Pulsar application added) becomes a
// header after those in __kafka_order; a list that does not parse, or an
// order list naming a property that is gone, is ignored and the headers
// follow the properties' wire order. Properties with repeated keys on the
// wire (raw clients, and what earlier versions wrote) still decode: marks
// name the n-th repetition of a key as "key#n".

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// occ names one property: its key and which repetition of that key it is
// (0-based, in wire order).
type occ struct {
	key string
	n   int
}

// slot names where one header value lives for the order list: the key as
// stored (escaped) and its repetition index, -1 for the last value (stored
// under the key itself).
type slot struct {
	key string
	rep int
}

// carrier is one non-reserved property on its way to becoming a header.
type carrier struct {
	h    Header
	slot slot
	used bool
}

// decodeProps turns properties into headers, undoing appendProps.
// Properties that do not parse as reserved ones are kept as headers.
func decodeProps(props []rawKV) (hdrs []Header, ts int64, hasTS bool) {
	var b64Vals, nulls, b64Keys map[occ]bool
	var order []string
	var reserved []bool
	nReserved := 0
	for i, kv := range props {
		if len(kv.k) < len(reservedPrefix) || string(kv.k[:len(reservedPrefix)]) != reservedPrefix {
			continue
		}
		var err error
		switch string(kv.k) {
		case propB64:
			b64Vals, err = parseMarks(string(kv.v))
		case propNull:
			nulls, err = parseMarks(string(kv.v))
		case propB64Key:
			b64Keys, err = parseMarks(string(kv.v))
		case propTimestamp:
			ts, err = strconv.ParseInt(string(kv.v), 10, 64)
			hasTS = err == nil
		case propOrder:
			order, err = parseOrder(string(kv.v))
		default:
			continue
		}
		if err == nil {
			if reserved == nil {
				reserved = make([]bool, len(props))
			}
			reserved[i] = true
			nReserved++
		}
	}
	if len(props) == nReserved {
		return nil, ts, hasTS
	}
	hdrs = make([]Header, 0, len(props)-nReserved)
	var seen map[string]int
	if b64Vals != nil || nulls != nil || b64Keys != nil {
		seen = map[string]int{}
	}
	var carriers []carrier
	if order != nil {
		carriers = make([]carrier, 0, len(props)-nReserved)
	}
	for j, kv := range props {
		if reserved != nil && reserved[j] {
			continue
		}
		pk := string(kv.k)
		h := Header{Key: pk, Value: kv.v}
		// The stored key and repetition of a value of a repeated key.
		stored, rep := pk, -1
		if strings.HasPrefix(pk, repPrefix) {
			if n, rest, ok := parseRep(pk); ok {
				stored, rep, h.Key = rest, n, rest
			}
		}
		if seen != nil {
			o := occ{pk, seen[pk]}
			seen[pk]++
			if b64Keys[o] {
				if dk, err := b64decode([]byte(stored)); err == nil {
					h.Key = string(dk)
				}
			}
			switch {
			case nulls[o]:
				h.Value = nil
			case b64Vals[o]:
				if dv, err := b64decode(kv.v); err == nil {
					h.Value = dv
				}
			}
		}
		if order != nil {
			carriers = append(carriers, carrier{h: h, slot: slot{stored, rep}})
			continue
		}
		hdrs = append(hdrs, h)
	}
	if order == nil {
		return hdrs, ts, hasTS
	}
	if ordered, ok := applyOrder(order, carriers); ok {
		return append(hdrs, ordered...), ts, hasTS
	}
	for _, c := range carriers {
		hdrs = append(hdrs, c.h)
	}
	return hdrs, ts, hasTS
}

// applyOrder lays carriers out as the order list says (the j-th of c
// entries of key k is __kafka_rep.j.k for j < c-1, else k), followed by the
// carriers it does not name, in wire order. false: the list names a value
// that is not there (an application removed or renamed it).
func applyOrder(order []string, carriers []carrier) ([]Header, bool) {
	bySlot := make(map[slot]int, len(carriers))
	for i, c := range carriers {
		if _, dup := bySlot[c.slot]; !dup {
			bySlot[c.slot] = i
		}
	}
	total := make(map[string]int, len(order))
	for _, k := range order {
		total[k]++
	}
	next := make(map[string]int, len(total))
	out := make([]Header, 0, len(carriers))
	for _, k := range order {
		j := next[k]
		next[k]++
		sl := slot{k, j}
		if j == total[k]-1 {
			sl.rep = -1
		}
		i, ok := bySlot[sl]
		if !ok {
			return nil, false
		}
		carriers[i].used = true
		out = append(out, carriers[i].h)
	}
	for _, c := range carriers {
		if !c.used {
			out = append(out, c.h)
		}
	}
	return out, true
}

// parseRep splits "__kafka_rep.<n>.<key>".
func parseRep(pk string) (n int, key string, ok bool) {
	num, key, ok := strings.Cut(pk[len(repPrefix):], ".")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || strconv.Itoa(n) != num {
		return 0, "", false
	}
	return n, key, true
}

// parseOrder parses __kafka_order: comma-separated query-escaped stored
// keys, one per header.
func parseOrder(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		k, err := url.QueryUnescape(f)
		if err != nil {
			return nil, corrupt("order list %q", s)
		}
		out = append(out, k)
	}
	return out, nil
}

// parseMarks parses a reserved property's list: comma-separated property
// keys, query-escaped, each followed by "#n" for its n-th repetition (n > 0).
func parseMarks(s string) (map[occ]bool, error) {
	m := map[occ]bool{}
	for f := range strings.SplitSeq(s, ",") {
		k, nstr, rep := strings.Cut(f, "#")
		n := 0
		if rep {
			var err error
			if n, err = strconv.Atoi(nstr); err != nil || n < 1 {
				return nil, corrupt("marker list %q", s)
			}
		}
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, corrupt("marker list %q", s)
		}
		m[occ{key, n}] = true
	}
	return m, nil
}

// appendMarks appends the reserved property name listing the properties
// at idx (indexes into keys, the property keys in wire order).
func appendMarks(dst []byte, name string, keys []string, idx []int) []byte {
	if len(idx) == 0 {
		return dst
	}
	var v []byte
	for j, i := range idx {
		if j > 0 {
			v = append(v, ',')
		}
		v = append(v, url.QueryEscape(keys[i])...)
		n := 0
		for _, k := range keys[:i] {
			if k == keys[i] {
				n++
			}
		}
		if n > 0 {
			v = append(v, '#')
			v = strconv.AppendInt(v, int64(n), 10)
		}
	}
	return appendKV(dst, []byte(name), v)
}

// appendKV appends one properties field (KeyValue) of a SingleMessageMetadata.
func appendKV(dst, k, v []byte) []byte {
	dst = protowire.AppendTag(dst, smmProperties, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(protowire.SizeBytes(len(k))+protowire.SizeBytes(len(v))+2))
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendBytes(dst, k)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	return protowire.AppendBytes(dst, v)
}

// needsKeyEscape reports whether a header key is stored as its base64.
func needsKeyEscape(k string) bool {
	return !utf8.ValidString(k) || strings.HasPrefix(k, reservedPrefix)
}

// appendProps appends m's headers (and a timestamp event_time cannot
// hold, if withTS) as properties with unique keys, in header order;
// reserved properties, appended last, say what a map of them cannot (see
// the file comment).
func appendProps(dst []byte, m *Message, withTS bool) []byte {
	hs := m.Headers
	// Fast path: UTF-8 keys that never repeat are their own property keys.
	plain := true
	for i, h := range hs {
		if needsKeyEscape(h.Key) {
			plain = false
			break
		}
		for _, o := range hs[:i] {
			if o.Key == h.Key {
				plain = false
				break
			}
		}
		if !plain {
			break
		}
	}
	var keys []string // property keys, when not the header keys
	var stored []string
	repeated := false
	if !plain {
		stored = make([]string, len(hs))
		for i, h := range hs {
			stored[i] = h.Key
			if needsKeyEscape(h.Key) {
				stored[i] = b64.EncodeToString([]byte(h.Key))
			}
		}
		keys = make([]string, len(hs))
		for i := range hs {
			total, before := 0, 0
			for j, k := range stored {
				if k == stored[i] {
					total++
					if j < i {
						before++
					}
				}
			}
			keys[i] = stored[i]
			if before < total-1 {
				repeated = true
				keys[i] = repPrefix + strconv.Itoa(before) + "." + stored[i]
			}
		}
	}
	var b64Vals, nulls, b64Keys []int
	var vb []byte
	for i, h := range hs {
		var k []byte
		if keys == nil {
			k = []byte(h.Key)
		} else {
			k = []byte(keys[i])
			if needsKeyEscape(h.Key) {
				b64Keys = append(b64Keys, i)
			}
		}
		v := h.Value
		switch {
		case v == nil:
			nulls = append(nulls, i)
		case !utf8.Valid(v):
			vb = b64.AppendEncode(vb[:0], v)
			v = vb
			b64Vals = append(b64Vals, i)
		}
		dst = appendKV(dst, k, v)
	}
	if len(b64Vals)+len(nulls)+len(b64Keys) > 0 {
		if keys == nil {
			keys = make([]string, len(hs))
			for i, h := range hs {
				keys[i] = h.Key
			}
		}
		dst = appendMarks(dst, propB64, keys, b64Vals)
		dst = appendMarks(dst, propNull, keys, nulls)
		dst = appendMarks(dst, propB64Key, keys, b64Keys)
	}
	if repeated {
		var v []byte
		for i, k := range stored {
			if i > 0 {
				v = append(v, ',')
			}
			v = append(v, url.QueryEscape(k)...)
		}
		dst = appendKV(dst, []byte(propOrder), v)
	}
	if withTS && m.Timestamp <= 0 {
		dst = appendKV(dst, []byte(propTimestamp), strconv.AppendInt(nil, m.Timestamp, 10))
	}
	return dst
}
